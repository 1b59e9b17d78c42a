"""Property-based tests: over random valid configurations the layer has ConvLSTM2D's output
shape, finite outputs, and a save/load round trip that reproduces them."""

import tempfile
from pathlib import Path

import keras
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import faconvlstm
from faconvlstm import FAConvLSTM2D


@st.composite
def configurations(draw):
    """A valid layer configuration and an input shape it accepts."""
    kernel = draw(st.sampled_from([1, 2, 3]))
    strided = draw(st.booleans())
    options = {
        "filters": draw(st.integers(1, 6)),
        "kernel_size": kernel,
        "padding": draw(st.sampled_from(["same", "valid"])),
        "strides": draw(st.sampled_from([1, 2])) if strided else 1,
        "dilation_rate": 1 if strided else draw(st.sampled_from([1, 2])),
        "data_format": draw(st.sampled_from(["channels_last", "channels_first"])),
        "return_sequences": draw(st.booleans()),
        "go_backwards": draw(st.booleans()),
        "bottleneck": draw(st.integers(1, 6)),
        "multiscale_dilations": draw(
            st.lists(st.integers(1, 3), min_size=1, max_size=3, unique=True)
        ),
        "squeeze_excitation": draw(st.booleans()),
        "peephole": draw(st.booleans()),
        "attention_every": draw(st.integers(0, 3)),
        "attention_heads": draw(st.sampled_from([1, 2])),
    }
    options["attention_dim"] = 2 * options["attention_heads"]
    reach = (kernel - 1) * options["dilation_rate"] + 1
    rows, cols = draw(st.integers(reach, 7)), draw(st.integers(reach, 7))
    steps, channels = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    if options["data_format"] == "channels_first":
        shape = (2, steps, channels, rows, cols)
    else:
        shape = (2, steps, rows, cols, channels)
    return options, shape


#: Twelve configurations on PyTorch; six on JAX, where each compiles anew (about 4 s each).
PROPERTY_SETTINGS = settings(
    max_examples=6 if faconvlstm.backend() == "jax" else 12, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@PROPERTY_SETTINGS
@given(configurations())
def test_shapes_match_convlstm2d_and_outputs_are_finite(configuration):
    options, shape = configuration
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    output = keras.ops.convert_to_numpy(FAConvLSTM2D(**options)(x))
    fa_only = {"bottleneck", "multiscale_dilations", "squeeze_excitation", "peephole",
               "attention_every", "attention_heads", "attention_dim"}
    reference = keras.layers.ConvLSTM2D(
        **{key: value for key, value in options.items() if key not in fa_only}
    ).compute_output_shape(shape)
    assert output.shape == tuple(reference)
    assert np.isfinite(output).all()


@PROPERTY_SETTINGS
@given(configurations())
def test_save_and_load_reproduce_the_outputs(configuration):
    options, shape = configuration
    x = np.random.default_rng(1).normal(size=shape).astype("float32")
    inputs = keras.Input(shape[1:])
    layer = FAConvLSTM2D(**options)
    model = keras.Model(inputs, layer(inputs))
    if layer.cell.attention is not None:  # gamma starts at 0: make attention count
        layer.cell.attention.gamma.assign(np.full(options["filters"], 0.5, "float32"))
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "model.keras"
        model.save(path)
        loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x)),
        rtol=1e-5, atol=1e-6,
    )
    assert loaded.layers[-1].get_config() == layer.get_config()
