"""FAConvLSTM2D.inspect: the SE weights and attention maps of the steps the layer really ran."""

import keras
import numpy as np
import pytest

from faconvlstm import FAConvLSTM2D
from faconvlstm.layers.attention import AxialAttention2D
from tests.layers.helpers import randomize_weights
from tests.layers.numpy_reference import window_means


def _softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=-1, keepdims=True)
    return np.exp(scores) / np.exp(scores).sum(axis=-1, keepdims=True)


def spread(window_weights: np.ndarray, length: int) -> np.ndarray:
    """Weights of consecutive windows shared equally among the ``length`` cells they cover."""
    size = -(-length // len(window_weights))
    shares = [window_weights[cell // size] / min(size, length - cell // size * size)
              for cell in range(length)]
    return np.array(shares)


def received_by_brute_force(h, query_kernel, key_kernel, heads, tokens=0):
    """Full ``(H W) x (H W)`` effective attention of one sample, averaged over queries."""
    height, width, _ = h.shape
    depth = query_kernel.shape[1] // heads
    query = (h @ query_kernel).reshape(height, width, heads, depth)
    key = (h @ key_kernel).reshape(height, width, heads, depth)
    row_keys, column_keys = window_means(key, 1, tokens), window_means(key, 0, tokens)
    maps = np.zeros((heads, height, width))
    for n in range(heads):
        for i in range(height):
            for j in range(width):
                row_of = {k: spread(_softmax(row_keys[k, :, n] @ query[k, j, n] / np.sqrt(depth)),
                                    width)
                          for k in range(height)}
                column = spread(_softmax(column_keys[:, j, n] @ query[i, j, n] / np.sqrt(depth)),
                                height)
                for k in range(height):
                    maps[n, k] += column[k] * row_of[k]
    return maps.mean(axis=0) / (height * width)


@pytest.mark.parametrize("heads, tokens", [(1, 0), (2, 0), (2, 2)])
def test_received_attention_matches_the_composed_row_and_column_weights(rng, heads, tokens):
    h = rng.normal(size=(2, 4, 5, 6)).astype("float32")
    attention = AxialAttention2D(attention_dim=4, heads=heads, tokens=tokens)
    attention.build(h.shape)
    randomize_weights(attention, rng, scale=0.8)
    received = keras.ops.convert_to_numpy(attention.received_attention(h))
    assert received.shape == (2, 4, 5)
    np.testing.assert_allclose(received.sum(axis=(1, 2)), 1.0, rtol=1e-5)
    for sample in range(2):
        expected = received_by_brute_force(
            h[sample], attention.query_kernel.numpy(), attention.key_kernel.numpy(), heads,
            tokens,
        )
        np.testing.assert_allclose(received[sample], expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_inspect_replays_the_layer_exactly(rng, data_format, go_backwards):
    layer = FAConvLSTM2D(
        5, 3, padding="same", bottleneck=4, attention_every=2, return_sequences=True,
        data_format=data_format, go_backwards=go_backwards,
    )
    shape = (2, 5, 3, 6, 7) if data_format == "channels_first" else (2, 5, 6, 7, 3)
    x = rng.normal(size=shape).astype("float32")
    layer(x)
    randomize_weights(layer, rng)
    expected = keras.ops.convert_to_numpy(layer(x))
    inspected = layer.inspect(x)
    outputs = keras.ops.convert_to_numpy(inspected["outputs"])
    if data_format == "channels_first":
        outputs = outputs.transpose(0, 1, 4, 2, 3)
    processed = list(range(5))[::-1] if go_backwards else list(range(5))
    # The layer returns its outputs in processing order, as ConvLSTM2D does.
    np.testing.assert_allclose(outputs[:, processed], expected, rtol=1e-4, atol=1e-5)
    # Attention ran at processing positions 1, 3 and 4 (every 2nd step and the last one).
    assert inspected["attention_steps"] == sorted(processed[p] for p in (1, 3, 4))
    attention = keras.ops.convert_to_numpy(inspected["attention"])
    assert attention.shape == (2, 3, 6, 7)
    np.testing.assert_allclose(attention.sum(axis=(2, 3)), 1.0, rtol=1e-5)
    weights = keras.ops.convert_to_numpy(inspected["channel_weights"])
    assert weights.shape == (2, 5, 4)
    assert np.all((weights > 0) & (weights < 1))


def test_channel_weights_are_the_scale_squeeze_excitation_applies(rng):
    layer = FAConvLSTM2D(4, 3, padding="same", bottleneck=4, attention_every=0)
    x = rng.normal(size=(1, 3, 5, 5, 2)).astype("float32")
    layer(x)
    randomize_weights(layer, rng)
    excitation = layer.cell.excitation
    u = rng.normal(size=(1, 5, 5, 4)).astype("float32")
    weights = keras.ops.convert_to_numpy(excitation.channel_weights(u))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(excitation(u)), u * weights[:, None, None, :], rtol=1e-5
    )
    assert layer.inspect(x)["attention"] is None


def test_inspect_without_squeeze_excitation_has_no_channel_weights(rng):
    layer = FAConvLSTM2D(4, 3, padding="same", squeeze_excitation=False, attention_every=3)
    inspected = layer.inspect(rng.normal(size=(1, 4, 5, 5, 2)).astype("float32"))
    assert inspected["channel_weights"] is None
    assert inspected["attention_steps"] == [2, 3]
