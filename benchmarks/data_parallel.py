#!/usr/bin/env python
"""Data-parallel training: train-step time on 1 and N devices, FA and ConvLSTM2D.

Each (cell, devices) pair runs in fresh processes. JAX: one process whose XLA host platform
exposes ``--devices`` CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count``);
with more than one device the step runs under ``keras.distribution.DataParallel``. PyTorch:
with more than one device, ``--devices`` processes under ``torchrun`` with
``DistributedDataParallel`` (gloo on CPU, one thread per process unless ``OMP_NUM_THREADS``
is set). Each device takes an equal share of the global batch; on a GPU host the same
script splits across the GPUs. Prints the median step time, the speed-up over one device,
and FA / ConvLSTM2D ratios.

    python benchmarks/data_parallel.py
    python benchmarks/data_parallel.py --backend torch
    python benchmarks/data_parallel.py --devices 4 --batch 16 --nlat 48 --nlon 72
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

MARKER = "@@DATA_PARALLEL@@ "


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("jax", "torch"), default="jax")
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--nlat", type=int, default=24)
    parser.add_argument("--nlon", type=int, default=36)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("CELL", "DEVICES"), help=argparse.SUPPRESS)
    return parser.parse_args()


def child(arguments) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import keras
    import numpy as np

    from faconvlstm.models import ModelConfig, build_autoencoder
    from faconvlstm.pipeline.distributed import data_parallel

    cell, devices = arguments.child[0], int(arguments.child[1])
    config = ModelConfig(channels=6, grid=(arguments.nlat, arguments.nlon),
                         window=arguments.window, cell=cell)
    shape = (arguments.batch, config.window, *config.grid, config.channels)
    rng = np.random.default_rng(0)
    batch = {
        "frames": rng.normal(size=shape).astype("float32"),
        "weights": np.ones(shape, "float32"),
        "year_fraction": rng.random(shape[:2]).astype("float32"),
    }
    parallel = data_parallel(devices, arguments.batch)
    index, parts = parallel.shard
    share = arguments.batch // parts
    batch = {name: values[index * share : (index + 1) * share] for name, values in batch.items()}
    with parallel.scope():
        model = build_autoencoder(config)
        model.compile(optimizer=keras.optimizers.Adam())
        parallel.prepare(model)
        for _ in range(arguments.warmup):
            model.train_on_batch(batch)
        times = []
        for _ in range(arguments.steps):
            started = time.perf_counter()
            model.train_on_batch(batch)
            times.append(time.perf_counter() - started)
    if parallel.is_chief:
        print(MARKER + json.dumps({"seconds": statistics.median(times)}))


def measure(arguments, cell: str, devices: int) -> float:
    environment = {
        **os.environ,
        "KERAS_BACKEND": arguments.backend,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={arguments.devices}",
    }
    command = [sys.executable, __file__, "--child", cell, str(devices)]
    if arguments.backend == "torch" and devices > 1:
        command[1:1] = ["-m", "torch.distributed.run", "--standalone",
                        f"--nproc-per-node={devices}"]
    for name in ("backend", "batch", "window", "nlat", "nlon", "steps", "warmup"):
        command += [f"--{name}", str(getattr(arguments, name))]
    completed = subprocess.run(command, env=environment, capture_output=True, text=True)
    if completed.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{completed.stderr[-4000:]}")
    line = next(line for line in completed.stdout.splitlines() if line.startswith(MARKER))
    return json.loads(line[len(MARKER):])["seconds"]


def main():
    arguments = parse_arguments()
    if arguments.child:
        child(arguments)
        return
    print(f"{arguments.backend}; default autoencoder on {arguments.nlat}x{arguments.nlon}, 6 channels, "
          f"batch {arguments.batch} (global), windows of {arguments.window} steps; "
          f"median of {arguments.steps} steps")
    seconds = {}
    for cell, label in (("fa", "FA"), ("convlstm", "ConvLSTM2D")):
        for devices in sorted({1, arguments.devices}):
            seconds[label, devices] = measure(arguments, cell, devices)
            print(f"{label:<11} {devices} device(s): {seconds[label, devices]:.3f} s per step",
                  flush=True)
    for label in ("FA", "ConvLSTM2D"):
        print(f"{label} speed-up on {arguments.devices} devices: "
              f"{seconds[label, 1] / seconds[label, arguments.devices]:.2f}x")
    for devices in sorted({1, arguments.devices}):
        print(f"FA / ConvLSTM2D step time on {devices} device(s): "
              f"{seconds['FA', devices] / seconds['ConvLSTM2D', devices]:.2f}")


if __name__ == "__main__":
    main()
