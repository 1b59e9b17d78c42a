#!/usr/bin/env python
"""Pipeline speed: the autoencoder's training step and embedding pass, FA against its twin.

For each size, the default autoencoder (``faconvlstm.models.build_autoencoder``) with the FA
encoder and with the ConvLSTM2D twin (same filters) is timed in the same process, on random
inputs shaped like the pipeline's batches:

* the training step: median wall time of ``train_on_batch`` on ``--batch`` windows, after
  ``--warmup`` untimed steps, with the pipeline's optimizer (Adam); FA's and the twin's
  steps are taken in turn, so a busier stretch of the machine weighs on both alike, and the
  ratio of each round's two steps is reported too (median, lowest-highest);
* the embedding pass: median time of the encoder half on batches of 32 windows (in turn as
  well), reported per 1000 windows (``embed --stride 1`` takes one window per timestep, the
  default one every half window: per timestep, 1 / 8 of these at windows of 16);
* each part alone: a model of that part's own layers (the same objects, shared weights)
  trained one step on random inputs (forward, backward, Adam on its weights) with the mean of
  its output as the loss, which costs next to nothing beside the part: the recurrent encoder,
  the subspace head, the temporal attention (with the positional encoding) and the decoder
  with the masked loss (its own); "rest" is the full step minus their sum (the optimizer on
  all weights at once, framework overhead);
* loading: median time to serve one training batch from preprocessed fields in memory
  (``WindowDataset``, shuffled; ``benchmarks/loader_throughput.py`` streams from a store).

The process keeps freed memory, as the ``faconvlstm`` command does by default
(``faconvlstm.allocator``); ``--system-allocator`` measures with glibc's own settings.

Sizes: ``demo`` (the demo's 24 x 36 grid, 6 channels, filters 16,16), ``realistic``
(64 x 96, 6 channels, filters 32,32; with ``demo`` the default) and ``wide`` (64 x 96, filters
64,64, the layer benchmark's width); the grids of the real files of docs/RESULTS.md at the
pipeline's default filters 16,16 (``winter-sst`` 18 x 30, ``hadisst`` 13 x 57,
``hadisst-winds`` 11 x 26 with 3 channels, ``ostia`` 18 x 432 with windows of 8,
``winds-2.5`` 73 x 144 with 2 channels: a 2.5-degree global file) and ``moonshot``
(200 x 280, 6 channels: 0.25-degree daily fields over Europe). ``--memory`` adds each
model's peak training memory, measured in a fresh process
(:mod:`faconvlstm.evaluation.memory`). Examples::

    python benchmarks/pipeline_speed.py
    python benchmarks/pipeline_speed.py --sizes demo --steps 3 --warmup 1
    python benchmarks/pipeline_speed.py --sizes realistic --profile 25
    python benchmarks/pipeline_speed.py --sizes winter-sst,hadisst,hadisst-winds,ostia,winds-2.5 --memory
    python benchmarks/pipeline_speed.py --sizes moonshot --steps 1 --warmup 1 --no-parts --embed-batch 4 --memory
"""

import argparse
import os
import statistics
import sys
import time

#: Each size's model settings; a size without a ``window`` takes ``--window``.
SIZES = {
    "demo": {"grid": (24, 36), "channels": 6, "filters": (16, 16)},
    "realistic": {"grid": (64, 96), "channels": 6, "filters": (32, 32)},
    "wide": {"grid": (64, 96), "channels": 6, "filters": (64, 64)},
    "winter-sst": {"grid": (18, 30), "channels": 1, "filters": (16, 16)},
    "hadisst": {"grid": (13, 57), "channels": 1, "filters": (16, 16)},
    "hadisst-winds": {"grid": (11, 26), "channels": 3, "filters": (16, 16)},
    "ostia": {"grid": (18, 432), "channels": 1, "filters": (16, 16), "window": 8},
    "winds-2.5": {"grid": (73, 144), "channels": 2, "filters": (16, 16)},
    "moonshot": {"grid": (200, 280), "channels": 6, "filters": (16, 16)},
}
CELLS = {"fa": "FA", "convlstm": "ConvLSTM2D twin"}

def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="torch", choices=["torch", "jax", "tensorflow"])
    parser.add_argument("--sizes", default="demo,realistic",
                        help="Comma-separated, of: " + ", ".join(SIZES))
    parser.add_argument("--batch", type=int, default=8, help="Training windows per step.")
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5, help="Timed steps per measurement.")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed steps first.")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--embed-batch", type=int, default=32,
                        help="Windows per batch of the embedding pass.")
    parser.add_argument("--no-parts", dest="parts", action="store_false",
                        help="Leave out the time of each part (the large grids' longest "
                             "measurement).")
    parser.add_argument("--memory", action="store_true",
                        help="Also measure each model's peak training memory (a fresh "
                             "process per model).")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="PyTorch only: also print the N operators that take the most "
                             "time in one training step of each model (torch.profiler).")
    parser.add_argument("--system-allocator", action="store_true",
                        help="Leave glibc's allocator settings as they are (by default the "
                             "process keeps freed memory, as the faconvlstm command does).")
    return parser.parse_args()


def median_seconds(function, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        function()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def model_inputs(rng, config, batch: int) -> dict:
    """Random normalized frames, cos-latitude weights and year fractions, as batches are."""
    shape = (batch, config.window, *config.grid, config.channels)
    weights = np.cos(np.linspace(-1.2, 1.2, config.grid[0]))[None, None, :, None, None]
    return {
        "frames": rng.normal(size=shape).astype("float32"),
        "weights": np.broadcast_to(weights, shape).astype("float32"),
        "year_fraction": rng.random((batch, config.window)).astype("float32"),
    }


def part_models(autoencoder, config) -> dict:
    """One trainable model per part, built from the autoencoder's own layer objects (the
    decoder and loss part includes the forecast leads: the latent maps and one decoding per
    lead)."""
    window, grid, channels = config.window, config.grid, config.channels
    frames = keras.Input((window, *grid, channels + 1))
    hidden = frames
    for layer in encoder_layers(autoencoder):
        hidden = layer(hidden)
    head = autoencoder.get_layer("subspace_head")
    features = keras.Input((window, *grid, config.filters[-1] + channels))
    pooling = keras.Input((window, *grid))
    z = keras.Input((window, config.embedding_dim))
    year_fraction = keras.Input((window,))
    encoding = autoencoder.get_layer("positional_encoding")(year_fraction)
    attended = autoencoder.get_layer("temporal_attention")([z, encoding])
    target, weights = keras.Input((window, *grid, channels)), keras.Input((window, *grid, channels))
    decoded = autoencoder.get_layer("decoder")(autoencoder.get_layer("leads")(z))
    reconstruction = autoencoder.get_layer("reconstruction")([decoded, target, weights])
    return {
        "encoder": (keras.Model(frames, hidden), output_mean),
        "head": (keras.Model([features, pooling], head([features, pooling])), output_mean),
        "temporal attention": (keras.Model([z, year_fraction], attended), output_mean),
        "decoder and loss": (keras.Model([z, target, weights], reconstruction), None),
    }


def output_mean(_, outputs):
    """A loss that leaves the part's own cost alone: the mean of its output."""
    return keras.ops.mean(outputs)


def random_like(rng, tensors, batch: int) -> list:
    """Random arrays of ``batch`` samples shaped like the symbolic ``tensors``."""
    return [rng.normal(size=(batch, *t.shape[1:])).astype("float32") for t in tensors]


def part_seconds(autoencoder, config, rng, arguments) -> dict[str, float]:
    seconds = {}
    for name, (model, loss) in part_models(autoencoder, config).items():
        model.compile(optimizer=keras.optimizers.Adam(), loss=loss)
        inputs = random_like(rng, model.inputs, arguments.batch)
        if name == "temporal attention":
            inputs[1] = rng.random(inputs[1].shape).astype("float32")
        if name == "decoder and loss":
            inputs[2] = np.abs(inputs[2])
        inputs = inputs[0] if len(inputs) == 1 else inputs
        targets = None if loss is None else np.zeros(arguments.batch, "float32")
        seconds[name] = median_seconds(lambda: model.train_on_batch(inputs, targets),
                                       arguments.steps, arguments.warmup)
    return seconds


def loading_seconds(config, rng, arguments) -> float:
    steps = 20 * config.window
    time_axis = xr.date_range("2000-01-01", periods=steps, freq="D")
    values = rng.normal(size=(steps, *config.grid, config.channels)).astype("float32")
    fields = xr.DataArray(
        values, dims=("time", "lat", "lon", "channel"),
        coords={"time": time_axis, "lat": np.linspace(-60, 60, config.grid[0]),
                "lon": np.linspace(0, 360, config.grid[1], endpoint=False),
                "channel": [f"c{i}" for i in range(config.channels)]},
    )
    starts = np.arange(steps - config.window + 1)
    batches = WindowDataset(fields, config.window, starts, arguments.batch, shuffle=True)
    indices = iter(range(len(batches)))
    return median_seconds(lambda: batches[next(indices) % len(batches)],
                          arguments.steps, arguments.warmup)


def interleaved_times(functions: dict, steps: int, warmup: int) -> dict[str, list[float]]:
    """Wall times of each function over ``steps`` rounds, the functions called in turn in
    every round (so a slower or busier stretch of the machine weighs on all of them alike)."""
    times = {name: [] for name in functions}
    for round_ in range(warmup + steps):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def interleaved_medians(functions: dict, steps: int, warmup: int) -> dict[str, float]:
    """Median wall time of each function, called in turn (:func:`interleaved_times`)."""
    times = interleaved_times(functions, steps, warmup)
    return {name: statistics.median(values) for name, values in times.items()}


def paired_ratios(numerators: list[float], denominators: list[float]) -> tuple[float, ...]:
    """The lowest, median and highest ratio of the times of the same rounds."""
    ratios = sorted(a / b for a, b in zip(numerators, denominators))
    return ratios[0], statistics.median(ratios), ratios[-1]


def measure(size: str, arguments) -> dict:
    """Each cell's figures at ``size``: training steps and embedding passes timed in turn."""
    rng = np.random.default_rng(0)
    models, batches, windows, encoders = {}, {}, {}, {}
    for cell in CELLS:
        config = ModelConfig(cell=cell, **{"window": arguments.window, **SIZES[size]})
        models[cell] = build_autoencoder(config)
        models[cell].compile(optimizer=keras.optimizers.Adam())
        batches[cell] = model_inputs(rng, config, arguments.batch)
        encoders[cell] = embedding_model(models[cell])
        windows[cell] = model_inputs(rng, config, arguments.embed_batch)
    step_times = interleaved_times(
        {cell: lambda cell=cell: models[cell].train_on_batch(batches[cell]) for cell in CELLS},
        arguments.steps, arguments.warmup,
    )
    steps = {cell: statistics.median(times) for cell, times in step_times.items()}
    embeds = interleaved_medians(
        {cell: lambda cell=cell: encoders[cell].predict_on_batch(windows[cell])
         for cell in CELLS},
        arguments.steps, arguments.warmup,
    )
    results = {}
    for cell in CELLS:
        config = ModelConfig(cell=cell, **{"window": arguments.window, **SIZES[size]})
        if arguments.profile:
            print_profile(f"{size}, {CELLS[cell]}",
                          lambda: models[cell].train_on_batch(batches[cell]), arguments.profile)
        parts = {}
        if arguments.parts:
            parts = part_seconds(models[cell], config, rng, arguments)
            parts["rest"] = steps[cell] - sum(parts.values())
        memory = (peak_training_memory(config.to_dict(), batches[cell]) if arguments.memory
                  else None)
        results[cell] = {
            "step": steps[cell], "step ratios": paired_ratios(step_times["convlstm"],
                                                              step_times[cell]),
            "embed per 1000 windows": embeds[cell] * 1000 / arguments.embed_batch,
            "parts": parts, "loading": loading_seconds(config, rng, arguments),
            "memory": memory, "encoder parameters": encoder_parameters(models[cell]),
        }
    return results


def print_profile(title: str, step, rows: int) -> None:
    """The ``rows`` operators taking the most CPU time in one call of ``step``, self time
    (without the operators they call), as torch.profiler's table."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        step()
    print(f"\n### Where one training step's time goes: {title}\n")
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def print_table(size: str, results: dict, arguments) -> None:
    fa, twin = results["fa"], results["convlstm"]
    grid = "x".join(map(str, SIZES[size]["grid"]))
    window = SIZES[size].get("window", arguments.window)
    print(f"\n## {size}: {grid} grid, {SIZES[size]['channels']} channels, filters "
          f"{','.join(map(str, SIZES[size]['filters']))}, batch {arguments.batch}, window "
          f"{window}\n")
    print("| measurement | FA | ConvLSTM2D twin | twin / FA |")
    print("| --- | ---: | ---: | ---: |")
    rows = [("training step (s)", fa["step"], twin["step"]),
            ("embedding, per 1000 windows (s)", fa["embed per 1000 windows"],
             twin["embed per 1000 windows"])]
    rows += [(f"part: {name} (s)", fa["parts"][name], twin["parts"][name])
             for name in fa["parts"]]
    rows.append(("loading one batch, in memory (s)", fa["loading"], twin["loading"]))
    if fa["memory"] is not None:
        rows.append(("peak training memory (MiB)", fa["memory"], twin["memory"]))
    for label, ours, theirs in rows:
        digits = 1 if "MiB" in label else 4
        print(f"| {label} | {ours:.{digits}f} | {theirs:.{digits}f} | {theirs / ours:.2f} |")
    lowest, median, highest = fa["step ratios"]
    print(f"| twin / FA training step, rounds taken in turn | | | {median:.2f} "
          f"({lowest:.2f}-{highest:.2f}) |")
    print(f"| encoder parameters | {fa['encoder parameters']:,} | "
          f"{twin['encoder parameters']:,} | "
          f"{twin['encoder parameters'] / fa['encoder parameters']:.1f} |")


def main(arguments) -> None:
    if arguments.profile and arguments.backend != "torch":
        sys.exit("--profile needs the torch backend.")
    allocator = "unchanged" if arguments.system_allocator else keep_freed_memory()
    print(f"backend {keras.backend.backend()}, {arguments.threads} threads, "
          f"{arguments.steps} timed steps after {arguments.warmup} (medians), "
          f"allocator {allocator}")
    for size in arguments.sizes.split(","):
        if size not in SIZES:
            sys.exit(f"Unknown size {size!r}; expected some of {sorted(SIZES)}.")
        print_table(size, measure(size, arguments), arguments)


if __name__ == "__main__":
    ARGUMENTS = parse_arguments()
    os.environ["KERAS_BACKEND"] = ARGUMENTS.backend
    os.environ.setdefault("OMP_NUM_THREADS", str(ARGUMENTS.threads))
    import keras
    import numpy as np
    import xarray as xr

    if ARGUMENTS.backend == "torch":
        import torch

        torch.set_num_threads(ARGUMENTS.threads)
    from faconvlstm.allocator import keep_freed_memory
    from faconvlstm.data.windows import WindowDataset
    from faconvlstm.evaluation.memory import peak_training_memory
    from faconvlstm.models import ModelConfig, build_autoencoder, embedding_model
    from faconvlstm.models.autoencoder import encoder_layers, encoder_parameters

    main(ARGUMENTS)
