"""Axial attention on keys pooled to at most ``tokens`` windows per row (column)."""

import keras
import numpy as np
import pytest

from faconvlstm.layers.attention import AxialAttention2D, pooling_matrix
from tests.layers.helpers import randomize_weights
from tests.layers.numpy_reference import window_means


@pytest.mark.parametrize("length, tokens", [(7, 3), (9, 3), (432, 32), (5, 8)])
def test_pooling_matrix_averages_windows_of_consecutive_cells(rng, length, tokens):
    matrix, valid = pooling_matrix(length, tokens)
    matrix = keras.ops.convert_to_numpy(matrix)
    assert valid is None and matrix.shape[1] <= tokens
    values = rng.normal(size=(length, 3))
    np.testing.assert_allclose(matrix.T @ values, window_means(values, 0, tokens), atol=1e-6)


@pytest.mark.backend
@pytest.mark.parametrize("length, tokens", [(7, 3), (5, 8)])
def test_pooling_matrix_of_a_length_known_at_run_time_masks_missing_windows(length, tokens):
    """A symbolic length gives ``tokens`` columns: the static matrix, then masked ones."""
    static, _ = pooling_matrix(length, tokens)
    static = keras.ops.convert_to_numpy(static)
    matrix, valid = pooling_matrix(keras.ops.convert_to_tensor(length), tokens)
    matrix, valid = keras.ops.convert_to_numpy(matrix), keras.ops.convert_to_numpy(valid)
    assert matrix.shape == (length, tokens)
    assert valid.tolist() == [k < static.shape[1] for k in range(tokens)]
    np.testing.assert_allclose(matrix[:, valid], static, atol=1e-7)
    assert not matrix[:, ~valid].any()


@pytest.mark.backend
@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="only TensorFlow traces a grid unknown until run time")
@pytest.mark.parametrize("grid", [(4, 5), (6, 11)])
def test_attention_traced_for_any_grid_equals_eager(rng, grid):
    import tensorflow as tf

    attention = AxialAttention2D(attention_dim=4, heads=2, tokens=4)
    attention.build((None, None, None, 6))
    randomize_weights(attention, rng, scale=0.8)
    h = rng.normal(size=(2, *grid, 6)).astype("float32")
    traced = tf.function(attention, input_signature=[tf.TensorSpec((None, None, None, 6))])
    np.testing.assert_allclose(traced(h).numpy(), attention(h).numpy(), rtol=1e-5, atol=1e-6)

