"""Analytic forward cost (multiply-accumulates) of the recurrent layers, per sample."""

from __future__ import annotations

import keras

from faconvlstm.layers import FAConvLSTM2D
from faconvlstm.layers.attention import attention_steps, keys_per_query


def convlstm_macs(steps: int, height: int, width: int, channels: int, filters: int,
                  kernel_size: int) -> int:
    """``keras.layers.ConvLSTM2D`` ("same", stride 1): ``T H W k^2 (C + F) 4F``.

    One k x k input convolution C -> 4F and one recurrent convolution F -> 4F per step;
    elementwise gate arithmetic is not counted.
    """
    return steps * height * width * kernel_size**2 * (channels + filters) * 4 * filters


def fa_macs(steps: int, height: int, width: int, channels: int, filters: int, kernel_size: int,
            bottleneck: int, attention_dim: int, attention_every: int, dilations: int = 3,
            squeeze_excitation: bool = True, attention_tokens: int = 0) -> int:
    """``FAConvLSTM2D`` ("same", stride 1), with r the bottleneck, n the dilations::

        per step = H W [C r + k^2 r + F r + n k^2 r + 4 F r] + 2 r max(1, r // 4)  (SE)
        per attention = H W [4 F d_a + 2 d_a (K_H + K_W)] + H W 2 d_a K (each pooled axis)
        MACs = T per step + (attention applications) per attention

    ``K``: the keys per query along an axis, ``min(L, attention_tokens)`` windows (``L``
    with ``attention_tokens=0``); a pooled axis also pays for its window means of keys and
    values.
    """
    r, k2, cells = bottleneck, kernel_size**2, height * width
    per_step = cells * (channels * r + k2 * r + filters * r + dilations * k2 * r + 4 * filters * r)
    if squeeze_excitation:
        per_step += 2 * r * max(1, r // 4)
    applications = int(keras.ops.sum(keras.ops.cast(attention_steps(steps, attention_every), "int32")))
    per_attention = cells * 4 * filters * attention_dim
    for length in (height, width):
        keys = keys_per_query(length, attention_tokens)
        pooled = keys < length
        per_attention += 2 * cells * attention_dim * keys * (1 + pooled)
    return steps * per_step + applications * per_attention


def layer_macs(layer: keras.layers.Layer, steps: int, height: int, width: int) -> int:
    """Forward MACs of a built ``FAConvLSTM2D`` or ``ConvLSTM2D`` layer ("same", stride 1)."""
    if isinstance(layer, FAConvLSTM2D):
        return fa_macs(steps, height, width, layer.cell.input_channels, layer.filters,
                       layer.kernel_size[0], layer.bottleneck, layer.attention_dim,
                       layer.attention_every, len(layer.multiscale_dilations),
                       layer.squeeze_excitation, layer.attention_tokens)
    kernel_size, _, channels, _ = layer.cell.kernel.shape
    return convlstm_macs(steps, height, width, channels, layer.filters, kernel_size)
