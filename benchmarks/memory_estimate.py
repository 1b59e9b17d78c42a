#!/usr/bin/env python
"""Training-memory estimate against the measured peak, FA and ConvLSTM2D.

For each grid, encoder width and cell, prints
``faconvlstm.models.autoencoder.training_memory_bytes`` and the peak resident memory of two
training steps of the same model on a random batch, measured in a fresh process by
``faconvlstm.evaluation.memory.peak_training_memory`` (above the memory in use before the
first step), and their ratio. The estimate is meant to bound the peak: a ratio below 1
means it does not. Examples::

    python benchmarks/memory_estimate.py
    python benchmarks/memory_estimate.py --backend jax
    python benchmarks/memory_estimate.py --grids 32x48 --filters 16,16 64,64
"""

import argparse
import os
import sys
from pathlib import Path

CELLS = ("fa", "convlstm")
MIB = 2**20


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="torch", choices=["torch", "jax"])
    parser.add_argument("--grids", nargs="+", default=["16x24", "32x48", "64x96"],
                        help="Grids as HxW.")
    parser.add_argument("--filters", nargs="+", default=["16,16", "48,48"],
                        help="Encoder widths, one comma-separated list per model.")
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def random_batch(rng, config, batch_size: int) -> dict:
    """Random frames, all cells valid (the mask does not change what a step keeps)."""
    import numpy as np

    shape = (batch_size, config.window, *config.grid, config.channels)
    return {
        "frames": rng.normal(size=shape).astype("float32"),
        "weights": np.ones(shape, "float32"),
        "year_fraction": rng.random(shape[:2]).astype("float32"),
    }


def main():
    arguments = parse_arguments()
    os.environ["KERAS_BACKEND"] = arguments.backend
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import numpy as np

    import faconvlstm
    from faconvlstm.evaluation.memory import peak_training_memory
    from faconvlstm.models import ModelConfig
    from faconvlstm.models.autoencoder import training_memory_bytes

    rng = np.random.default_rng(arguments.seed)
    print(f"backend {faconvlstm.backend()}; batch {arguments.batch}, window {arguments.window}, "
          f"{arguments.channels} channels; MiB")
    print(f"{'grid':>8} {'filters':>8} {'cell':>9} {'estimate':>9} {'measured':>9} {'ratio':>6}")
    for grid in arguments.grids:
        for filters in arguments.filters:
            for cell in CELLS:
                config = ModelConfig(
                    channels=arguments.channels,
                    grid=tuple(int(size) for size in grid.split("x")),
                    window=arguments.window,
                    filters=tuple(int(size) for size in filters.split(",")),
                    cell=cell,
                )
                batch = random_batch(rng, config, arguments.batch)
                measured = peak_training_memory(config.to_dict(), batch)
                estimate = training_memory_bytes(config, arguments.batch) / MIB
                print(f"{grid:>8} {filters:>8} {cell:>9} {estimate:9.1f} {measured:9.1f} "
                      f"{estimate / measured:6.2f}", flush=True)


if __name__ == "__main__":
    main()
