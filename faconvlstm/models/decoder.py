"""A per-timestep decoder from the embedding back to the frames."""

from __future__ import annotations

import math

import keras
from keras import layers, ops

#: Each embedding is expanded on a grid this many times coarser than the data, then upsampled.
UPSAMPLING = 4


@keras.saving.register_keras_serializable(package="faconvlstm")
class FrameDecoder(layers.Layer):
    """``z (..., d) -> frames (..., H, W, C)``, one frame per embedding (e.g. ``(B, T, d)``).

    A dense map to a ``ceil(H/4) x ceil(W/4)`` grid of ``filters`` features, nearest
    upsampling by 4, a crop to ``H x W``, a 3x3 convolution with ReLU and a 1x1 convolution to
    the ``channels``. With ``patterns`` a linear term ``sum_k z_k D_k`` is added, one learned
    full-resolution pattern ``D_k (H, W, C)`` per embedding axis (starting at zero), as an EOF
    expansion reconstructs a field. Everything the decoder knows about a frame passes
    through ``z``.
    """

    def __init__(self, grid: tuple[int, int], channels: int, filters: int = 16,
                 patterns: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.grid = tuple(int(size) for size in grid)
        self.channels = channels
        self.filters = filters
        self.patterns = bool(patterns)
        self.coarse_grid = tuple(math.ceil(size / UPSAMPLING) for size in self.grid)

    def build(self, input_shape):
        self.expand = None
        if self.filters:
            self._build_coarse_branch(input_shape)
        self.pattern_kernel = None
        if self.patterns:
            self.pattern_kernel = self.add_weight(
                shape=(input_shape[-1], self.grid[0] * self.grid[1] * self.channels),
                name="pattern_kernel", initializer="zeros",
            )
            self.pattern_bias = self.add_weight(
                shape=(self.grid[0] * self.grid[1] * self.channels,), name="pattern_bias",
                initializer="zeros",
            )

    def _build_coarse_branch(self, input_shape) -> None:
        coarse_cells = self.coarse_grid[0] * self.coarse_grid[1]
        dtype = self.dtype_policy
        self.expand = layers.Dense(coarse_cells * self.filters, name="expand", dtype=dtype)
        self.expand.build(input_shape)
        self.upsample = layers.UpSampling2D(UPSAMPLING, name="upsample", dtype=dtype)
        self.smooth = layers.Conv2D(
            self.filters, 3, padding="same", activation="relu", name="smooth", dtype=dtype
        )
        self.smooth.build((None, *self.grid, self.filters))
        self.output_projection = layers.Conv2D(
            self.channels, 1, name="output_projection", dtype=dtype
        )
        self.output_projection.build((None, *self.grid, self.filters))

    def call(self, z):
        shape = (*ops.shape(z)[:-1], *self.grid, self.channels)
        frames = 0.0
        if self.expand is not None:
            coarse = ops.reshape(self.expand(z), (-1, *self.coarse_grid, self.filters))
            fine = self.upsample(coarse)[:, : self.grid[0], : self.grid[1], :]
            frames = ops.reshape(self.output_projection(self.smooth(fine)), shape)
        if self.pattern_kernel is not None:
            linear = ops.matmul(z, ops.cast(self.pattern_kernel, z.dtype))
            frames = frames + ops.reshape(linear + ops.cast(self.pattern_bias, z.dtype), shape)
        return frames

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], *self.grid, self.channels)

    def get_config(self):
        config = super().get_config()
        config.update(grid=list(self.grid), channels=self.channels, filters=self.filters,
                      patterns=self.patterns)
        return config
