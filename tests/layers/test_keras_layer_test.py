"""Keras' own layer-test harness on FAConvLSTM2D, with the argument sets Keras uses for
ConvLSTM2D: build, shapes, dtypes, masking support, config and ``.keras`` round trips, a
training step, and a mixed-precision call, on whichever backend runs the suite."""

import keras
import pytest
from keras.src import testing

from faconvlstm import FAConvLSTM2D

#: ConvLSTM2D's test cases: (constructor arguments, input shape, output shape, call arguments).
CASES = {
    "same": ({"padding": "same"}, (3, 2, 4, 4, 3), (3, 4, 4, 5), {}),
    "valid-recurrent-dropout": (
        {"padding": "valid", "recurrent_dropout": 0.5}, (3, 2, 8, 8, 3), (3, 6, 6, 5),
        {"training": True},
    ),
    "valid-sequences": (
        {"padding": "valid", "return_sequences": True}, (3, 2, 8, 8, 3), (3, 2, 6, 6, 5), {},
    ),
    "attention-every-step-dropout": (
        {"padding": "same", "attention_every": 1, "dropout": 0.3, "go_backwards": True},
        (2, 3, 5, 6, 3), (2, 5, 6, 5), {"training": True},
    ),
}
#: The cell's trainable weights: input projection and depthwise kernel, recurrent
#: projection, three mixing kernels, two excitation kernels, expansion kernel and bias,
#: three peephole weights, and q, k, v, output kernels and gamma of the attention.
TRAINABLE_WEIGHTS = 2 + 1 + 3 + 2 + 2 + 3 + 5


def channels_first(shape):
    return (*shape[:-3], shape[-1], *shape[-3:-1])


class FAConvLSTM2DLayerTest(testing.TestCase):
    def check(self, name, data_format):
        options, input_shape, output_shape, call_kwargs = CASES[name]
        if data_format == "channels_first":
            input_shape, output_shape = channels_first(input_shape), channels_first(output_shape)
        self.run_layer_test(
            FAConvLSTM2D,
            init_kwargs={"filters": 5, "kernel_size": 3, "data_format": data_format, **options},
            input_shape=input_shape,
            call_kwargs=call_kwargs,
            expected_output_shape=output_shape,
            expected_num_trainable_weights=TRAINABLE_WEIGHTS,
            expected_num_non_trainable_weights=0,
            supports_masking=True,
        )


#: The case CI also runs on the other backends (it takes ~40 s to compile there).
ON_EVERY_BACKEND = {("attention-every-step-dropout", "channels_first")}


# The harness trains on a generator and says that `shuffle` is ignored.
@pytest.mark.filterwarnings("ignore:`shuffle=True` was passed")
@pytest.mark.parametrize(
    "name,data_format",
    [
        pytest.param(
            name, data_format, id=f"{name}-{data_format}",
            marks=[pytest.mark.backend] if (name, data_format) in ON_EVERY_BACKEND else [],
        )
        for name in CASES
        for data_format in ("channels_last", "channels_first")
    ],
)
def test_keras_layer_test_harness(name, data_format):
    FAConvLSTM2DLayerTest().check(name, data_format)
