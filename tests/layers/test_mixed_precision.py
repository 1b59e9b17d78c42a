"""FAConvLSTM2D under the mixed_float16 and mixed_bfloat16 policies."""

import keras
import numpy as np
import pytest

from faconvlstm import FAConvLSTM2D
from tests.layers.helpers import randomize_weights, trainable_gradients

#: policy -> (compute dtype, relative tolerance against float32 after 6 steps)
POLICIES = {"mixed_float16": ("float16", 1e-2), "mixed_bfloat16": ("bfloat16", 6e-2)}


def layer_with_every_mechanism(dtype: str) -> FAConvLSTM2D:
    return FAConvLSTM2D(6, 3, padding="same", bottleneck=4, attention_every=2,
                        return_sequences=True, dtype=dtype)


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_mixed_precision_computes_in_half_and_keeps_float32_weights(rng, policy):
    compute_dtype, tolerance = POLICIES[policy]
    x = rng.normal(size=(2, 6, 7, 8, 3)).astype("float32")
    full = layer_with_every_mechanism("float32")
    full(x)
    randomize_weights(full, rng, scale=0.3)
    mixed = layer_with_every_mechanism(policy)
    mixed(x)
    mixed.set_weights(full.get_weights())
    output = mixed(x)
    assert keras.backend.standardize_dtype(output.dtype) == compute_dtype
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in mixed.weights)
    values = keras.ops.convert_to_numpy(keras.ops.cast(output, "float32"))
    reference = keras.ops.convert_to_numpy(full(x))
    assert np.isfinite(values).all()
    scale = np.abs(reference).max()
    np.testing.assert_allclose(values, reference, atol=tolerance * scale)


@pytest.mark.parametrize("policy", [
    pytest.param("mixed_bfloat16"),
    pytest.param("mixed_float16", marks=pytest.mark.backend),  # loss scaling: backend code
])
def test_mixed_precision_gradients_reach_every_weight(rng, policy):
    inputs = keras.Input((4, 6, 7, 3))
    layer = layer_with_every_mechanism(policy)
    model = keras.Model(inputs, keras.ops.cast(layer(inputs), "float32"))
    layer.cell.attention.gamma.assign(np.full(6, 0.5, "float32"))
    x = rng.normal(size=(2, 4, 6, 7, 3)).astype("float32")
    y = rng.normal(size=(2, 4, 6, 7, 6)).astype("float32")
    gradients = trainable_gradients(model, x, y)
    assert len(gradients) == len(layer.trainable_weights)
    for path, gradient in gradients.items():
        assert np.all(np.isfinite(gradient)), path
        assert np.abs(gradient).max() > 0, f"no gradient reaches {path}"
