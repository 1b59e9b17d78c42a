"""Squeeze-and-excitation recalibration of the bottleneck channels."""

from __future__ import annotations

from keras import layers, ops


class SqueezeExcitation(layers.Layer):
    """``u * sigmoid(W2 relu(W1 mean_HW(u) + b1) + b2)``, per sample and step.

    ``(B, H, W, r) -> (B, H, W, r)``; the squeeze width is ``max(1, r // ratio)``.
    The mean over the grid keeps the layer independent of the grid size.
    """

    def __init__(self, ratio: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.ratio = ratio

    def build(self, input_shape):
        channels = input_shape[-1]
        squeezed = max(1, channels // self.ratio)
        self.squeeze_kernel = self.add_weight(shape=(channels, squeezed), name="squeeze_kernel")
        self.squeeze_bias = self.add_weight(
            shape=(squeezed,), name="squeeze_bias", initializer="zeros"
        )
        self.excite_kernel = self.add_weight(shape=(squeezed, channels), name="excite_kernel")
        self.excite_bias = self.add_weight(
            shape=(channels,), name="excite_bias", initializer="zeros"
        )

    def channel_weights(self, u):
        """The per-channel scale in ``(0, 1)``: ``(B, H, W, r) -> (B, r)``."""
        pooled = ops.mean(u, axis=(1, 2))
        hidden = ops.relu(ops.matmul(pooled, self.squeeze_kernel) + self.squeeze_bias)
        return ops.sigmoid(ops.matmul(hidden, self.excite_kernel) + self.excite_bias)

    def call(self, u):
        return u * self.channel_weights(u)[:, None, None, :]
