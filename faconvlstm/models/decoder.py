"""A per-timestep decoder from the embedding back to the frames."""

from __future__ import annotations

import math

import keras
from keras import layers, ops

#: Each embedding is expanded on a grid this many times coarser than the data, then upsampled.
UPSAMPLING = 4


@keras.saving.register_keras_serializable(package="faconvlstm")
class FrameDecoder(layers.Layer):
    """``z (B, T, d) -> frames (B, T, H, W, C)``, one frame per embedding.

    A dense map to a ``ceil(H/4) x ceil(W/4)`` grid of ``filters`` features, nearest
    upsampling by 4, a crop to ``H x W``, a 3x3 convolution with ReLU and a 1x1 convolution to
    the ``channels``. Everything the decoder knows about a frame passes through ``z``.
    """

    def __init__(self, grid: tuple[int, int], channels: int, filters: int = 16, **kwargs):
        super().__init__(**kwargs)
        self.grid = tuple(int(size) for size in grid)
        self.channels = channels
        self.filters = filters
        self.coarse_grid = tuple(math.ceil(size / UPSAMPLING) for size in self.grid)

    def build(self, input_shape):
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
        batch, steps = ops.shape(z)[0], ops.shape(z)[1]
        coarse = ops.reshape(self.expand(z), (-1, *self.coarse_grid, self.filters))
        fine = self.upsample(coarse)[:, : self.grid[0], : self.grid[1], :]
        frames = self.output_projection(self.smooth(fine))
        return ops.reshape(frames, (batch, steps, *self.grid, self.channels))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], *self.grid, self.channels)

    def get_config(self):
        config = super().get_config()
        config.update(grid=list(self.grid), channels=self.channels, filters=self.filters)
        return config
