"""The layer matches a plain NumPy computation of the cell, mechanism by mechanism."""

import keras
import numpy as np
import pytest

from faconvlstm import FAConvLSTM2D
from tests.layers.helpers import randomize_weights, reference_config, reference_weights
from tests.layers.numpy_reference import reference_forward

BASE = dict(filters=6, kernel_size=3, padding="same", bottleneck=4, attention_dim=4,
            attention_heads=2, attention_every=2, return_sequences=True, return_state=True)

CASES = {
    "every mechanism": {},
    "single-scale mixing": dict(multiscale_dilations=(1,)),
    "no squeeze-excitation": dict(squeeze_excitation=False),
    "no peepholes": dict(peephole=False),
    "no attention": dict(attention_every=0),
    "every mechanism off": dict(multiscale_dilations=(1,), squeeze_excitation=False,
                                peephole=False, attention_every=0, use_bias=False),
    "attention every step, one head": dict(attention_every=1, attention_heads=1),
    "keys pooled along both axes": dict(attention_tokens=3),
    "keys pooled along rows only": dict(attention_tokens=8),
    "keys of every cell": dict(attention_tokens=0),
    "valid padding, strides 2": dict(padding="valid", strides=2),
    "same padding, strides 2": dict(strides=2),
    "dilation_rate 2, 2x3 kernel": dict(dilation_rate=2, kernel_size=(2, 3)),
    "go_backwards": dict(go_backwards=True),
}


def run_case(rng, overrides, steps=5, grid=(7, 9), channels=3):
    layer = FAConvLSTM2D(**{**BASE, **overrides})
    x = rng.normal(size=(2, steps, *grid, channels)).astype("float32")
    layer.build(x.shape)
    randomize_weights(layer, rng)
    outputs, h, c = (keras.ops.convert_to_numpy(t) for t in layer(x))
    expected = reference_forward(x.astype(np.float64), reference_weights(layer),
                                 reference_config(layer))
    return (outputs, h, c), expected


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.backend
def test_layer_matches_numpy_reference(rng, name):
    actual, expected = run_case(rng, CASES[name])
    for got, want, what in zip(actual, expected, ("outputs", "h", "c")):
        assert got.shape == want.shape, what
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5, err_msg=what)


def test_reference_sees_each_mechanism(rng):
    """Guard against a vacuous reference: switching a mechanism off changes the output."""
    full, _ = run_case(np.random.default_rng(1), {})
    for name in ("single-scale mixing", "no squeeze-excitation", "no peepholes", "no attention"):
        reduced, _ = run_case(np.random.default_rng(1), CASES[name])
        assert not np.allclose(full[0], reduced[0], atol=1e-3), name
    pooled, _ = run_case(np.random.default_rng(1), CASES["keys pooled along both axes"])
    every_cell, _ = run_case(np.random.default_rng(1), CASES["keys of every cell"])
    assert not np.allclose(pooled[0], every_cell[0], atol=1e-3)


@pytest.mark.backend
def test_channels_first_equals_channels_last(rng):
    """channels_first is the same computation on transposed tensors."""
    x = rng.normal(size=(2, 4, 6, 5, 3)).astype("float32")
    last = FAConvLSTM2D(**BASE, data_format="channels_last")
    first = FAConvLSTM2D(**BASE, data_format="channels_first")
    last.build(x.shape)
    first.build(np.transpose(x, (0, 1, 4, 2, 3)).shape)
    randomize_weights(last, rng)
    first.set_weights(last.get_weights())
    out_last = [keras.ops.convert_to_numpy(t) for t in last(x)]
    out_first = [keras.ops.convert_to_numpy(t) for t in first(np.transpose(x, (0, 1, 4, 2, 3)))]
    np.testing.assert_allclose(np.transpose(out_first[0], (0, 1, 3, 4, 2)), out_last[0],
                               rtol=1e-5, atol=1e-6)
    for got, want in zip(out_first[1:], out_last[1:]):
        np.testing.assert_allclose(np.transpose(got, (0, 2, 3, 1)), want, rtol=1e-5, atol=1e-6)


@pytest.mark.backend
def test_initial_state_is_used(rng):
    layer = FAConvLSTM2D(**BASE)
    x = rng.normal(size=(2, 3, 5, 5, 3)).astype("float32")
    layer.build(x.shape)
    randomize_weights(layer, rng)
    h0, c0 = (rng.normal(size=(2, 5, 5, 6)).astype("float32") for _ in range(2))
    outputs, h, c = (keras.ops.convert_to_numpy(t) for t in layer(x, initial_state=[h0, c0]))
    expected = reference_forward(x.astype(np.float64), reference_weights(layer),
                                 reference_config(layer), initial_state=(h0, c0))
    np.testing.assert_allclose(outputs, expected[0], rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(c, expected[2], rtol=2e-4, atol=2e-5)
