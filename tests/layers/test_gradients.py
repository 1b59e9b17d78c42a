"""Every trainable weight gets a gradient, and a short training run lowers the loss."""

import keras
import numpy as np
import pytest

from faconvlstm import FAConvLSTM2D
from tests.layers.helpers import trainable_gradients


def small_model(**options):
    inputs = keras.Input((4, 6, 7, 3))
    layer = FAConvLSTM2D(6, 3, padding="same", bottleneck=4, attention_dim=4,
                         attention_every=2, return_sequences=True, **options)
    return keras.Model(inputs, layer(inputs)), layer


@pytest.mark.backend
def test_gradients_reach_every_trainable_weight(rng):
    model, layer = small_model()
    layer.cell.attention.gamma.assign(np.full(6, 0.5, "float32"))
    x = rng.normal(size=(2, 4, 6, 7, 3)).astype("float32")
    y = rng.normal(size=(2, 4, 6, 7, 6)).astype("float32")
    gradients = trainable_gradients(model, x, y)
    assert len(gradients) == len(layer.trainable_weights) == 18
    for path, gradient in gradients.items():
        assert np.all(np.isfinite(gradient)), path
        assert np.abs(gradient).max() > 0, f"no gradient reaches {path}"


@pytest.mark.backend
def test_attention_projections_start_with_zero_gradient(rng):
    """With gamma = 0 (its initial value) only gamma itself learns from attention."""
    model, layer = small_model()
    x = rng.normal(size=(2, 4, 6, 7, 3)).astype("float32")
    y = rng.normal(size=(2, 4, 6, 7, 6)).astype("float32")
    gradients = trainable_gradients(model, x, y)
    attention = layer.cell.attention
    for weight in (attention.query_kernel, attention.key_kernel, attention.value_kernel,
                   attention.output_kernel):
        assert np.abs(gradients[weight.path]).max() == 0, weight.path
    assert np.abs(gradients[attention.gamma.path]).max() > 0


@pytest.mark.backend
def test_short_training_run_lowers_the_loss(rng):
    """Learn to predict the next frame of a moving blob."""
    frames = np.zeros((16, 5, 8, 8, 1), "float32")
    for sample in range(16):
        row, col = rng.integers(1, 6, size=2)
        for step in range(5):
            frames[sample, step, row, (col + step) % 8, 0] = 1.0
    inputs = keras.Input((4, 8, 8, 1))
    hidden = FAConvLSTM2D(8, 3, padding="same", return_sequences=True, attention_every=2)(inputs)
    outputs = keras.layers.TimeDistributed(keras.layers.Conv2D(1, 1))(hidden)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(0.01), "mse")
    history = model.fit(frames[:, :4], frames[:, 1:], epochs=15, batch_size=8, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.backend
@pytest.mark.skipif(keras.backend.backend() != "jax", reason="rematerialization is JAX's")
def test_the_jax_gradient_recomputes_each_step_instead_of_keeping_it(rng):
    """On JAX the cell step is rematerialized (``jax.checkpoint``): the scan keeps only each
    step's inputs and states for the backward pass, which bounds the training memory."""
    import jax
    import jax.numpy as jnp

    model, _ = small_model()
    x = rng.normal(size=(2, 4, 6, 7, 3)).astype("float32")

    def loss(trainable, non_trainable):
        outputs, _ = model.stateless_call(trainable, non_trainable, x)
        return jnp.mean(outputs**2)

    values = [[v.value for v in variables]
              for variables in (model.trainable_variables, model.non_trainable_variables)]
    assert "remat" in str(jax.make_jaxpr(jax.grad(loss))(*values))
