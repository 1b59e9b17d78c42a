"""Shared multi-scale depthwise spatial mixing of the bottleneck features."""

from __future__ import annotations

from keras import backend, constraints, initializers, layers, ops, regularizers


class MultiScaleDepthwiseMixing(layers.Layer):
    """Sum of depthwise ``kernel_size`` convolutions, one branch per dilation.

    One mixing serves all four gates. Every branch is "same"-padded with stride 1, so
    ``(B, H, W, r) -> (B, H, W, r)``; with dilations ``(1, 2, 4)`` and a 3x3 kernel the
    receptive field of one step is 9x9 at the cost of 27 multiply-adds per channel. On
    PyTorch, whose convolutions are channels-first, the input is transposed once for all
    branches rather than once per branch.
    """

    def __init__(
        self,
        kernel_size: tuple[int, int],
        dilations: tuple[int, ...],
        kernel_initializer="orthogonal",
        kernel_regularizer=None,
        kernel_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.kernel_size = kernel_size
        self.dilations = dilations
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)

    def build(self, input_shape):
        self.kernels = [
            self.add_weight(
                shape=(*self.kernel_size, input_shape[-1], 1),
                name=f"dilation_{dilation}_kernel",
                initializer=self.kernel_initializer,
                regularizer=self.kernel_regularizer,
                constraint=self.kernel_constraint,
            )
            for dilation in self.dilations
        ]

    def call(self, u):
        channels_first = backend.backend() == "torch"
        if channels_first:
            u = ops.transpose(u, (0, 3, 1, 2))
        mixed = None
        for kernel, dilation in zip(self.kernels, self.dilations):
            branch = ops.depthwise_conv(
                u, kernel, strides=1, padding="same",
                data_format="channels_first" if channels_first else "channels_last",
                dilation_rate=dilation,
            )
            mixed = branch if mixed is None else mixed + branch
        return ops.transpose(mixed, (0, 2, 3, 1)) if channels_first else mixed
