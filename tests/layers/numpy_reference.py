"""Plain NumPy reference implementation of the recurrent layer, for tests.

Everything is channels_last and float64. The code follows the step equations
of the layer one to one; it favors readability over speed (test sizes are
tiny).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

Config = Mapping[str, Any]
Weights = Mapping[str, Any]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic sigmoid, elementwise (any shape)."""
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis (any shape)."""
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def conv_output_size(size: int, kernel: int, stride: int, padding: str, dilation: int) -> int:
    """Output length of one spatial axis, as in Keras/TensorFlow."""
    if padding == "same":
        return math.ceil(size / stride)
    if padding == "valid":
        return (size - ((kernel - 1) * dilation + 1)) // stride + 1
    raise ValueError(f"unknown padding {padding!r}")


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """(pad_before, pad_after) of one spatial axis for TensorFlow "same" padding."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def depthwise_conv2d(
    x: np.ndarray,
    kernel: np.ndarray,
    strides: Sequence[int] = (1, 1),
    padding: str = "same",
    dilation: Sequence[int] = (1, 1),
) -> np.ndarray:
    """Depthwise 2-D cross-correlation (no kernel flip), depth multiplier 1.

    x: (B, H, W, C); kernel: (kh, kw, C, 1)  ->  (B, H', W', C) with
    out[b, y, x, c] = sum_{a, a'} x_padded[b, y*sh + a*dh, x*sw + a'*dw, c] * kernel[a, a', c, 0].
    """
    kh, kw = kernel.shape[:2]
    (sh, sw), (dh, dw) = strides, dilation
    _, height, width, _ = x.shape
    out_h = conv_output_size(height, kh, sh, padding, dh)
    out_w = conv_output_size(width, kw, sw, padding, dw)
    if padding == "same":
        pad_h = same_padding(height, kh, sh, dh)
        pad_w = same_padding(width, kw, sw, dw)
        x = np.pad(x, ((0, 0), pad_h, pad_w, (0, 0)))
    out = np.zeros((x.shape[0], out_h, out_w, x.shape[3]))
    for a in range(kh):
        for a2 in range(kw):
            rows = slice(a * dh, a * dh + (out_h - 1) * sh + 1, sh)
            cols = slice(a2 * dw, a2 * dw + (out_w - 1) * sw + 1, sw)
            out += x[:, rows, cols, :] * kernel[a, a2, :, 0]
    return out


def project_input(x_t: np.ndarray, weights: Weights, config: Config) -> np.ndarray:
    """Input path of one timestep: 1x1 projection P_x, then the strided depthwise conv.

    x_t: (B, H, W, C)  ->  (B, H', W', r)
    """
    return depthwise_conv2d(
        x_t @ weights["input_projection"],
        weights["input_depthwise"],
        strides=config["strides"],
        padding=config["padding"],
        dilation=config["dilation_rate"],
    )


def multiscale_mix(u: np.ndarray, weights: Weights, config: Config) -> np.ndarray:
    """Sum of "same" depthwise convs, branch j with dilation (d_j, d_j).

    u: (B, H', W', r)  ->  (B, H', W', r)
    """
    return sum(
        depthwise_conv2d(u, kernel, padding="same", dilation=(d, d))
        for kernel, d in zip(weights["mixing"], config["multiscale_dilations"], strict=True)
    )


def squeeze_excite(m: np.ndarray, weights: Weights) -> np.ndarray:
    """Squeeze-and-excitation channel gating; identity when the SE weights are None.

    m: (B, H', W', r)  ->  (B, H', W', r)
    """
    if weights.get("squeeze_kernel") is None:
        return m
    squeezed = np.maximum(m.mean(axis=(1, 2)) @ weights["squeeze_kernel"] + weights["squeeze_bias"], 0.0)
    scale = sigmoid(squeezed @ weights["excite_kernel"] + weights["excite_bias"])  # (B, r)
    return m * scale[:, None, None, :]


def window_means(t: np.ndarray, axis: int, tokens: int) -> np.ndarray:
    """Means of t over windows of ceil(L / tokens) consecutive entries along axis (the last
    window may be shorter); t itself when tokens is 0 or L <= tokens."""
    length = t.shape[axis]
    if not tokens or length <= tokens:
        return t
    size = math.ceil(length / tokens)
    windows = [np.take(t, range(start, min(start + size, length)), axis=axis).mean(axis=axis)
               for start in range(0, length, size)]
    return np.stack(windows, axis=axis)


def axial_attention(h: np.ndarray, weights: Weights, heads: int, tokens: int = 0) -> np.ndarray:
    """Multi-head row attention (along W') followed by column attention (along H').

    The column pass reuses the original queries and keys, with the row-pass result as
    values; keys and values are window means along the attended axis (window_means).
    h: (B, H', W', F)  ->  (B, H', W', F)
    """
    batch, height, width, _ = h.shape
    d_a = weights["query"].shape[1]
    head_dim = d_a // heads

    def split_heads(t: np.ndarray) -> np.ndarray:
        """(B, H', W', d_a) -> (B, H', W', heads, head_dim), head n = channels n*dh:(n+1)*dh."""
        return t.reshape(batch, height, width, heads, head_dim)

    q = split_heads(h @ weights["query"])
    k = split_heads(h @ weights["key"])
    v = split_heads(h @ weights["value"])
    scale = 1.0 / math.sqrt(head_dim)
    # Row attention: y fixed, x attends to window z of x'.
    row_keys, row_values = (window_means(t, 2, tokens) for t in (k, v))
    row_weights = softmax(np.einsum("byxnd,byznd->bynxz", q, row_keys) * scale)
    r1 = np.einsum("bynxz,byznd->byxnd", row_weights, row_values)
    # Column attention: x fixed, y attends to window z of y'.
    column_keys, column_values = (window_means(t, 1, tokens) for t in (k, r1))
    col_weights = softmax(np.einsum("byxnd,bzxnd->bxnyz", q, column_keys) * scale)
    r2 = np.einsum("bxnyz,bzxnd->byxnd", col_weights, column_values)
    return r2.reshape(batch, height, width, d_a) @ weights["output"]


def lstm_cell(
    xp_t: np.ndarray, h_prev: np.ndarray, c_prev: np.ndarray, weights: Weights, config: Config
) -> tuple[np.ndarray, np.ndarray]:
    """One recurrent step without attention.

    xp_t: (B, H', W', r) projected input; h_prev, c_prev: (B, H', W', F)
    ->  (h_t, c_t), each (B, H', W', F)
    """
    filters = config["filters"]
    u = xp_t + h_prev @ weights["recurrent_projection"]
    m = squeeze_excite(multiscale_mix(u, weights, config), weights)
    z = m @ weights["expansion"]
    if weights.get("bias") is not None:
        z = z + weights["bias"]
    z_i, z_f, z_g, z_o = np.split(z, 4, axis=-1)
    peephole = weights.get("peephole")
    p_i, p_f, p_o = np.zeros((3, filters)) if peephole is None else peephole
    i = sigmoid(z_i + p_i * c_prev)
    f = sigmoid(z_f + p_f * c_prev)
    g = np.tanh(z_g)
    c_t = f * c_prev + i * g
    o = sigmoid(z_o + p_o * c_t)
    return o * np.tanh(c_t), c_t


def attention_applies(t: int, steps: int, attention_every: int) -> bool:
    """Whether attention runs after 0-based processing step t of `steps`."""
    return attention_every > 0 and ((t + 1) % attention_every == 0 or t == steps - 1)


def reference_forward(
    x: np.ndarray,
    weights: Weights,
    config: Config,
    initial_state: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the layer over a sequence.

    x: (B, T, H, W, C); initial_state: optional (h0, c0), each (B, H', W', F).
    Returns (outputs (B, T, H', W', F) in processing order, h_T (B, H', W', F),
    c_T (B, H', W', F)).
    """
    if config["activation"] != "tanh" or config["recurrent_activation"] != "sigmoid":
        raise NotImplementedError("the reference supports only tanh / sigmoid activations")
    if config["go_backwards"]:
        x = x[:, ::-1]
    steps = x.shape[1]
    projected = [project_input(x[:, t], weights, config) for t in range(steps)]
    if initial_state is None:
        state_shape = projected[0].shape[:3] + (config["filters"],)
        h, c = np.zeros(state_shape), np.zeros(state_shape)
    else:
        h, c = initial_state
    outputs = []
    for t, xp_t in enumerate(projected):
        h, c = lstm_cell(xp_t, h, c, weights, config)
        if attention_applies(t, steps, config["attention_every"]):
            h = h + weights["gamma"] * axial_attention(
                h, weights, config["attention_heads"], config["attention_tokens"]
            )
        outputs.append(h)
    return np.stack(outputs, axis=1), h, c
