"""Quick start: swap keras.layers.ConvLSTM2D for FAConvLSTM2D and train a few steps.

The task: given 6 frames of a synthetic 4-variable field with a travelling wave, a
standing dipole and noise on a 32x32 grid, predict the next frame. The same model is
built with ConvLSTM2D to compare parameter counts; only the FA model is trained here
(``benchmarks/layer_speed.py`` compares speed).
"""

from __future__ import annotations

import time

import numpy as np

import faconvlstm
import keras
from faconvlstm import FAConvLSTM2D


def synthetic_fields(samples: int, steps: int, grid: int, rng: np.random.Generator) -> np.ndarray:
    """A travelling wave + standing dipole + noise: ``(samples, steps, grid, grid, 4)``."""
    y, x = np.meshgrid(np.linspace(0, 2 * np.pi, grid), np.linspace(0, 2 * np.pi, grid),
                       indexing="ij")
    phase = rng.uniform(0, 2 * np.pi, size=(samples, 1, 1, 1))
    t = np.arange(steps)[None, :, None, None]
    wave = np.sin(x[None, None] - 0.5 * t + phase)
    dipole = np.sin(y)[None, None] * np.cos(0.3 * t + phase)
    fields = np.stack([wave, dipole, wave * dipole, wave + 0.5 * dipole], axis=-1)
    return (fields + 0.1 * rng.normal(size=fields.shape)).astype("float32")


def next_frame_model(recurrent_layer: type, steps: int, grid: int, channels: int) -> keras.Model:
    """Two stacked recurrent layers and a 1x1 head predicting the next frame."""
    inputs = keras.Input((steps, grid, grid, channels))
    hidden = recurrent_layer(32, 3, padding="same", return_sequences=True)(inputs)
    hidden = recurrent_layer(32, 3, padding="same")(hidden)
    return keras.Model(inputs, keras.layers.Conv2D(channels, 1)(hidden))


def main(steps: int = 6, grid: int = 32, samples: int = 64, epochs: int = 3) -> None:
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    fields = synthetic_fields(samples, steps + 1, grid, rng)
    inputs, targets = fields[:, :steps], fields[:, steps]
    print(f"faconvlstm {faconvlstm.__version__} on the Keras '{faconvlstm.backend()}' backend")

    fa_model = next_frame_model(FAConvLSTM2D, steps, grid, fields.shape[-1])
    dense_model = next_frame_model(keras.layers.ConvLSTM2D, steps, grid, fields.shape[-1])
    fa_params, dense_params = fa_model.count_params(), dense_model.count_params()
    print(f"parameters: FAConvLSTM2D model {fa_params:,} | ConvLSTM2D model {dense_params:,} "
          f"({dense_params / fa_params:.1f}x fewer)")

    fa_model.compile(keras.optimizers.Adam(3e-3), "mse")
    before = fa_model.evaluate(inputs, targets, verbose=0)
    start = time.perf_counter()
    fa_model.fit(inputs, targets, epochs=epochs, batch_size=8, verbose=2)
    after = fa_model.evaluate(inputs, targets, verbose=0)
    print(f"FAConvLSTM2D next-frame MSE: {before:.4f} -> {after:.4f} "
          f"after {epochs} epochs ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
