#!/usr/bin/env python
"""Loader throughput against model throughput: is training ever data-bound?

Writes the synthetic dataset as a Zarr store (chunks of ``--chunk`` days), preprocesses it
as ``faconvlstm evaluate`` does (log1p of tp, anomalies, standardization, all lazy), and
measures, in windows per second:

* the loader streaming from the store (``WindowDataset`` with in-memory loading off: every
  shuffled training batch is read and preprocessed from disk);
* the loader on fields already in memory;
* one training step of the autoencoder with the FA encoder and with the ConvLSTM2D twin
  (same filters), on batches from the loader (median after ``--warmup`` steps);
* the FA autoencoder's ``fit`` for ``--fit-steps`` steps, time per step (median of 3 rounds
  that take the three in turn, one model), on fields in memory, streamed with the
  background read-ahead (the default), and streamed without it: the difference to in memory
  is what loading costs each step. The process keeps freed memory, as the command line does.

A loader/model ratio above 1 means the loader outpaces training. Examples::

    python benchmarks/loader_throughput.py
    python benchmarks/loader_throughput.py --nlat 96 --nlon 192 --backend jax
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

VARIABLES = ["t2m", "msl", "z@500", "z@850", "tp", "sst"]


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="torch", choices=["torch", "jax"])
    parser.add_argument("--years", type=int, default=4)
    parser.add_argument("--nlat", type=int, default=64)
    parser.add_argument("--nlon", type=int, default=128)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--chunk", type=int, default=32, help="Days per Zarr chunk.")
    parser.add_argument("--batches", type=int, default=20, help="Batches timed per loader.")
    parser.add_argument("--steps", type=int, default=5, help="Training steps timed per model.")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--fit-steps", type=int, default=5, help="Steps of each timed fit.")
    return parser.parse_args()


def windows_per_second(dataset, batches: int) -> float:
    started = time.perf_counter()
    for index in range(batches):
        dataset[index % len(dataset)]
    return batches * dataset.batch_size / (time.perf_counter() - started)


def training_windows_per_second(config, batch, steps: int, warmup: int) -> float:
    import keras

    from faconvlstm.models import build_autoencoder

    model = build_autoencoder(config)
    model.compile(optimizer=keras.optimizers.Adam())
    for _ in range(warmup):
        model.train_on_batch(batch)
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        model.train_on_batch(batch)
        times.append(time.perf_counter() - started)
    return len(batch["frames"]) / statistics.median(times)


def fit_seconds_per_step(config, datasets: dict, steps: int, warmup: int,
                         rounds: int = 3) -> dict[str, float]:
    """Median wall time per step of ``fit`` (one epoch of ``steps``) on each dataset: one
    model, warmed up by ``warmup`` steps, then ``rounds`` rounds that take the datasets in
    turn, so that drift over the run falls on all of them alike."""
    import keras

    from faconvlstm.models import build_autoencoder

    model = build_autoencoder(config)
    model.compile(optimizer=keras.optimizers.Adam())
    model.fit(next(iter(datasets.values())), epochs=1, steps_per_epoch=max(warmup, 1), verbose=0)
    times = {name: [] for name in datasets}
    for _ in range(rounds):
        for name, dataset in datasets.items():
            started = time.perf_counter()
            model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
            times[name].append((time.perf_counter() - started) / steps)
    return {name: statistics.median(values) for name, values in times.items()}


def main():
    arguments = parse_arguments()
    os.environ["KERAS_BACKEND"] = arguments.backend
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import faconvlstm
    from faconvlstm.allocator import keep_freed_memory
    from faconvlstm.data import windows
    from faconvlstm.data.preprocessing import make_preprocessor
    from faconvlstm.data.synthetic import make_synthetic_dataset
    from faconvlstm.data.windows import WindowDataset, training_starts
    from faconvlstm.models import ModelConfig
    from faconvlstm.pipeline import DataSelection

    keep_freed_memory()
    with tempfile.TemporaryDirectory() as directory:
        store = Path(directory) / "synthetic.zarr"
        dataset = make_synthetic_dataset(
            years=arguments.years, nlat=arguments.nlat, nlon=arguments.nlon
        )
        dataset.chunk({"time": arguments.chunk}).to_zarr(store)
        fields = DataSelection(str(store), VARIABLES).load()
        preprocessed = make_preprocessor(["tp"], False, True).fit_transform(fields)
        starts = training_starts(preprocessed["time"], arguments.window, 4)
        windows.IN_MEMORY_BYTES = 0
        streaming = WindowDataset(preprocessed, arguments.window, starts, arguments.batch,
                                  shuffle=True)
        streaming_rate = windows_per_second(streaming, arguments.batches)
        windows.IN_MEMORY_BYTES = 1 << 62
        in_memory = WindowDataset(preprocessed, arguments.window, starts, arguments.batch,
                                  shuffle=True)
        in_memory_rate = windows_per_second(in_memory, arguments.batches)
        batch = in_memory[0]
        size_mib = fields.nbytes / 2**20
        fa_config = ModelConfig(channels=len(VARIABLES), grid=(arguments.nlat, arguments.nlon),
                                window=arguments.window, cell="fa")
        fit_datasets = {"fields in memory": in_memory}
        windows.IN_MEMORY_BYTES = 0
        fit_datasets["streamed, read ahead"] = WindowDataset(
            preprocessed, arguments.window, starts, arguments.batch, shuffle=True)
        fit_datasets["streamed, in the loop"] = WindowDataset(
            preprocessed, arguments.window, starts, arguments.batch, shuffle=True, workers=1,
            max_queue_size=0)
        fit_steps = fit_seconds_per_step(fa_config, fit_datasets, arguments.fit_steps,
                                         arguments.warmup)

    model_rates = {}
    for name, cell in (("FA", "fa"), ("ConvLSTM2D", "convlstm")):
        config = ModelConfig(channels=len(VARIABLES), grid=(arguments.nlat, arguments.nlon),
                             window=arguments.window, cell=cell)
        model_rates[name] = training_windows_per_second(
            config, batch, arguments.steps, arguments.warmup
        )

    print(f"backend {faconvlstm.backend()}; {arguments.years} years of {len(VARIABLES)} channels "
          f"on {arguments.nlat}x{arguments.nlon} ({size_mib:.0f} MiB), Zarr chunks of "
          f"{arguments.chunk} days; windows of {arguments.window} steps, batches of "
          f"{arguments.batch}")
    print(f"{'':<34}{'windows/s':>10}")
    print(f"{'loader, streaming from Zarr':<34}{streaming_rate:>10.1f}")
    print(f"{'loader, fields in memory':<34}{in_memory_rate:>10.1f}")
    for name, rate in model_rates.items():
        print(f"{'training step, ' + name:<34}{rate:>10.1f}")
    for name, rate in model_rates.items():
        print(f"streaming loader / {name} training: {streaming_rate / rate:.1f}x")
    print(f"\nFA fit, {arguments.fit_steps} steps{'':<14}{'s/step':>10}{'loading':>10}")
    base = fit_steps["fields in memory"]
    for name, seconds in fit_steps.items():
        print(f"{name:<34}{seconds:>10.3f}{(seconds - base) / base:>+10.1%}")


if __name__ == "__main__":
    main()
