#!/usr/bin/env python
"""Attention cost per cell as the grid grows: pooled keys against keys of every cell.

For each grid, one training step (forward, backward, SGD) of the layer's axial attention
alone (``AxialAttention2D`` on a ``(B, H, W, F)`` hidden state, the pipeline's F = 16,
attention width 4 in 2 heads) with keys pooled to at most ``--tokens`` windows per row and
column (the layer's default) and with keys of every cell (``tokens=0``), beside one step of
a ``keras.layers.ConvLSTM2D`` with the same filters on a one-step sequence at that grid (a
cost per cell that is flat by construction). Each time is a median, given per cell in
microseconds; keys of every cell are skipped above ``--max-full-cells`` cells (their scores
grow as ``H * W * (H + W)``). Examples::

    python benchmarks/attention_scaling.py
    python benchmarks/attention_scaling.py --grids 18x30,73x144 --batch 1
"""

import argparse
import os
import statistics
import time

GRIDS = "18x30,13x57,64x96,18x432,73x144,200x280,361x720"


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="torch", choices=["torch", "jax", "tensorflow"])
    parser.add_argument("--grids", default=GRIDS, help="Comma-separated HxW grids.")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="Timed steps per measurement.")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed steps first.")
    parser.add_argument("--max-full-cells", type=int, default=20_000,
                        help="Largest grid (cells) on which keys of every cell are timed.")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    return parser.parse_args()


def step_seconds(layer, input_shape, arguments) -> float:
    """Median time of one training step of a model made of ``layer`` alone."""
    inputs = keras.Input(input_shape[1:])
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=input_shape).astype("float32")
    y = rng.normal(size=(input_shape[0], *model.output_shape[1:])).astype("float32")
    for _ in range(arguments.warmup):
        model.train_on_batch(x, y)
    times = []
    for _ in range(arguments.steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def attention(tokens: int, filters: int):
    layer = AxialAttention2D(attention_dim=4, heads=2, tokens=tokens)
    layer.build((None, None, None, filters))
    layer.gamma.assign(np.full(filters, 0.5, "float32"))  # gamma = 0 would cut the gradient
    return layer


def main(arguments) -> None:
    print(f"backend {keras.backend.backend()}, {arguments.threads} threads, batch "
          f"{arguments.batch}, F = {arguments.filters}, {arguments.steps} timed steps after "
          f"{arguments.warmup} (medians); microseconds per cell and sample\n")
    print(f"| grid | cells | pooled keys (tokens={arguments.tokens}) | keys of every cell | "
          "ConvLSTM2D step | pooled / ConvLSTM2D | every cell / ConvLSTM2D |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for grid in arguments.grids.split(","):
        height, width = map(int, grid.split("x"))
        cells = height * width
        per_cell = 1e6 / (cells * arguments.batch)
        shape = (arguments.batch, height, width, arguments.filters)
        pooled = step_seconds(attention(arguments.tokens, arguments.filters), shape, arguments)
        every = (step_seconds(attention(0, arguments.filters), shape, arguments)
                 if cells <= arguments.max_full_cells else None)
        convlstm = step_seconds(
            keras.layers.ConvLSTM2D(arguments.filters, 3, padding="same"),
            (arguments.batch, 1, height, width, arguments.filters), arguments,
        )
        every_cells = "-" if every is None else f"{every * per_cell:.2f}"
        every_ratio = "-" if every is None else f"{every / convlstm:.2f}"
        print(f"| {grid} | {cells:,} | {pooled * per_cell:.2f} | {every_cells} | "
              f"{convlstm * per_cell:.2f} | {pooled / convlstm:.2f} | {every_ratio} |",
              flush=True)


if __name__ == "__main__":
    ARGUMENTS = parse_arguments()
    os.environ["KERAS_BACKEND"] = ARGUMENTS.backend
    os.environ.setdefault("OMP_NUM_THREADS", str(ARGUMENTS.threads))
    import keras
    import numpy as np

    if ARGUMENTS.backend == "torch":
        import torch

        torch.set_num_threads(ARGUMENTS.threads)
    from faconvlstm.layers.attention import AxialAttention2D

    main(ARGUMENTS)
