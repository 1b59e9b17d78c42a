"""Bad use gets an InputError (a ValueError) that names the argument and what was expected."""

import keras
import numpy as np
import pytest

from faconvlstm import FAConvLSTM2D, InputError

BAD_ARGUMENTS = [
    (dict(filters=0), "`filters` must be a positive integer"),
    (dict(filters=2.5), "`filters` must be a positive integer"),
    (dict(kernel_size=0), "`kernel_size` must be a positive integer"),
    (dict(kernel_size=(3, 3, 3)), "`kernel_size` must be an integer or a tuple of 2 integers"),
    (dict(strides=-1), "`strides` must be a positive integer"),
    (dict(dilation_rate=0), "`dilation_rate` must be a positive integer"),
    (dict(strides=2, dilation_rate=2), "`strides` > 1 cannot be combined with `dilation_rate` > 1"),
    (dict(padding="causal"), "`padding` must be 'valid' or 'same'"),
    (dict(data_format="NHWC"), "`data_format` must be 'channels_last' or 'channels_first'"),
    (dict(bottleneck=0), "`bottleneck` must be a positive integer"),
    (dict(multiscale_dilations=()), "`multiscale_dilations` must be a non-empty tuple"),
    (dict(multiscale_dilations=(1, 0)), "`multiscale_dilations` must be a positive integer"),
    (dict(multiscale_dilations=(2, 2)), "`multiscale_dilations` must not repeat a dilation"),
    (dict(attention_every=-1), "`attention_every` must be a non-negative integer"),
    (dict(attention_tokens=-2), "`attention_tokens` must be a non-negative integer"),
    (dict(attention_dim=6, attention_heads=4),
     "`attention_dim` must be divisible by `attention_heads`"),
    (dict(attention_heads=0), "`attention_heads` must be a positive integer"),
    (dict(squeeze_ratio=0), "`squeeze_ratio` must be a positive integer"),
    (dict(dropout=1.5), "`dropout` must be a float in [0, 1)"),
    (dict(recurrent_dropout=-0.1), "`recurrent_dropout` must be a float in [0, 1)"),
]


@pytest.mark.parametrize("overrides,message", BAD_ARGUMENTS,
                         ids=[message.split("`")[1] + str(i) for i, (_, message)
                              in enumerate(BAD_ARGUMENTS)])
def test_bad_constructor_argument(overrides, message):
    arguments = {"filters": 4, "kernel_size": 3, **overrides}
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)")):
        FAConvLSTM2D(**arguments)


def test_wrong_input_rank():
    with pytest.raises(InputError, match=r"expects a 5D input \(batch, time, rows, cols, "
                                         r"channels\).*rank 4"):
        FAConvLSTM2D(4, 3)(np.zeros((2, 3, 8, 8), "float32"))


def test_channel_count_different_from_the_built_one():
    layer = FAConvLSTM2D(4, 3)
    layer(np.zeros((1, 2, 8, 8, 3), "float32"))
    with pytest.raises(InputError, match="built for inputs with 3 channels; received 5 channels"):
        layer(np.zeros((1, 2, 8, 8, 5), "float32"))


def test_unknown_channel_count():
    with pytest.raises(InputError, match="channel axis of the input .* must be known"):
        FAConvLSTM2D(4, 3)(keras.Input((None, 8, 8, None)))


def test_grid_too_small_for_the_kernel():
    with pytest.raises(InputError, match="grid 2x8 is too small for kernel_size=\\(3, 3\\)"):
        FAConvLSTM2D(4, 3, padding="valid")(np.zeros((1, 2, 2, 8, 1), "float32"))


def test_four_dimensional_mask_is_rejected():
    x = np.zeros((1, 2, 5, 5, 1), "float32")
    with pytest.raises(InputError, match=r"takes a \(batch, time\) timestep mask; received a "
                                         r"mask of shape \(1, 2, 5, 5\)"):
        FAConvLSTM2D(4, 3)(x, mask=np.ones((1, 2, 5, 5), bool))


def test_stateful_needs_a_static_grid():
    with pytest.raises(InputError, match="`stateful=True` needs a static batch size and grid"):
        FAConvLSTM2D(4, 3, stateful=True)(keras.Input(batch_shape=(2, 3, None, None, 1)))


def test_numpy_integers_are_accepted_as_convlstm2d_accepts_them(rng):
    layer = FAConvLSTM2D(np.int64(4), np.int32(3), strides=(np.int64(1), 1), padding="same",
                         bottleneck=np.int64(4), attention_every=np.int64(2))
    config = layer.get_config()
    assert (config["filters"], config["kernel_size"], config["strides"]) == (4, (3, 3), (1, 1))
    assert type(config["filters"]) is int and type(config["attention_every"]) is int
    assert tuple(layer(rng.normal(size=(1, 2, 5, 5, 2)).astype("float32")).shape) == (1, 5, 5, 4)
