"""Helpers shared by the layer tests: weights to NumPy, gradients on any backend."""

from __future__ import annotations

import keras
import numpy as np

from faconvlstm import FAConvLSTM2D


def randomize_weights(layer: keras.layers.Layer, rng: np.random.Generator, scale=0.4) -> None:
    """Give every weight (zero-initialized gains and peepholes included) random values."""
    for weight in layer.trainable_weights:
        weight.assign(rng.normal(0.0, scale, weight.shape).astype(weight.dtype))


def reference_weights(layer: FAConvLSTM2D) -> dict:
    """The layer's weights under the names of ``numpy_reference.reference_forward``."""
    cell = layer.cell

    def value(variable):
        return None if variable is None else np.asarray(variable.numpy(), dtype=np.float64)

    weights = {
        "input_projection": value(cell.input_path.projection),
        "input_depthwise": value(cell.input_path.depthwise_kernel),
        "recurrent_projection": value(cell.recurrent_projection),
        "mixing": [value(kernel) for kernel in cell.mixing.kernels],
        "expansion": value(cell.gates.expansion),
        "bias": value(cell.gates.bias),
        "peephole": value(cell.gates.peephole_kernel),
    }
    excitation = cell.excitation
    for name in ("squeeze_kernel", "squeeze_bias", "excite_kernel", "excite_bias"):
        weights[name] = value(getattr(excitation, name)) if excitation else None
    attention = cell.attention
    for name in ("query", "key", "value", "output"):
        weights[name] = value(getattr(attention, f"{name}_kernel")) if attention else None
    weights["gamma"] = value(attention.gamma) if attention else None
    return weights


def reference_config(layer: FAConvLSTM2D) -> dict:
    """The layer's hyper-parameters under the names of ``numpy_reference``."""
    cell = layer.cell
    return {
        "filters": cell.filters,
        "kernel_size": cell.kernel_size,
        "strides": cell.strides,
        "padding": cell.padding,
        "dilation_rate": cell.dilation_rate,
        "multiscale_dilations": cell.multiscale_dilations,
        "attention_every": cell.attention_every,
        "attention_heads": cell.attention_heads,
        "attention_tokens": cell.attention_tokens,
        "go_backwards": layer.go_backwards,
        "activation": "tanh",
        "recurrent_activation": "sigmoid",
    }


def trainable_gradients(model: keras.Model, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """d(MSE)/d(weight) for every trainable weight, by path, on the active backend."""
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        loss = keras.ops.mean((model(x, training=True) - torch.as_tensor(y)) ** 2)
        loss.backward()
        return {
            v.path: np.zeros(v.shape) if v.value.grad is None else v.value.grad.numpy()
            for v in model.trainable_variables
        }
    if backend == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]

        def loss_fn(values):
            out, _ = model.stateless_call(values, non_trainable, x, training=True)
            return keras.ops.mean((out - y) ** 2)

        grads = jax.grad(loss_fn)(trainable)
        return {v.path: np.asarray(g) for v, g in zip(model.trainable_variables, grads)}
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = keras.ops.mean((model(x, training=True) - y) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        return {
            v.path: np.zeros(v.shape) if g is None else np.asarray(g)
            for v, g in zip(model.trainable_variables, grads)
        }
    raise NotImplementedError(f"no gradient helper for the {backend} backend")
