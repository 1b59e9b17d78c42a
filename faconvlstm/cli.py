"""The ``faconvlstm`` command: synth, train, embed, index, cluster, evaluate, demo (wrappers of
the Python API)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import faconvlstm
from faconvlstm.allocator import keep_freed_memory
from faconvlstm.errors import INPUT_ERRORS

console = Console(stderr=True)

#: Exit status of a command stopped by an unexpected exception (a bug).
BUG_EXIT_STATUS = 2
CLICK_EXITS = (click.ClickException, click.exceptions.Exit, click.Abort)


def user_errors(command):
    """Input errors become one-line CLI errors (exit status 1); any other exception is a bug:
    its traceback, then a line asking for a report (exit status :data:`BUG_EXIT_STATUS`)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except INPUT_ERRORS as error:
            raise click.ClickException(str(error)) from None
        except CLICK_EXITS:
            raise
        except Exception as error:
            traceback.print_exc()
            click.echo(
                f"Bug: faconvlstm stopped on an unexpected {type(error).__name__}; this is a bug "
                "in faconvlstm, please report it with the traceback above.",
                err=True,
            )
            raise click.exceptions.Exit(BUG_EXIT_STATUS) from None

    return wrapper


def options(*decorators):
    """One decorator applying click option ``decorators`` in the order listed (as in ``--help``)."""

    def apply(command):
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply


time_axis_options = options(
    click.option("--time-dim", help="The time dimension, where the data's metadata do not "
                 "mark one (e.g. timestep)."),
    click.option("--time-units", help="CF units of the time dimension, where the data lack "
                 "them, e.g. 'hours since 1996-01-05 00:00'."),
)
selection_options = options(
    time_axis_options,
    click.option("--region",
                 help="LAT_MIN,LAT_MAX,LON_MIN,LON_MAX in degrees (may cross the dateline)."),
    click.option("--time", "time_range", help="START:END of the data to use."),
    click.option("--season", help="Months to keep, e.g. DJF or NDJFM."),
    click.option("--coarsen", type=int, help="Average blocks of N x N grid cells."),
    click.option("--log1p", default="", help="Channels to log1p-transform, e.g. tp."),
)
model_options = options(
    click.option("--filters", default="16,16", show_default=True,
                 help="Filters of each encoder layer."),
    click.option("--embedding-dim", default=16, show_default=True),
    click.option("--window", default=16, show_default=True, help="Timesteps per model window."),
)


def summary(title: str, rows: dict) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    for key, value in rows.items():
        table.add_row(key, str(value))
    console.print(table)


def parse_region(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise click.BadParameter(f"expected LAT_MIN,LAT_MAX,LON_MIN,LON_MAX; got {text!r}")
    return values


def names(text: str) -> list[str]:
    """A comma-separated list of names, empty entries left out."""
    return [name for name in text.split(",") if name]


def data_source(paths: tuple[str, ...]) -> str | list[str]:
    """DATA arguments as a run records them: absolute paths (globs kept), so the run's later
    commands find its data from any directory; one path, or a list."""
    absolute = [os.path.abspath(os.path.expanduser(path)) for path in paths]
    return absolute[0] if len(absolute) == 1 else absolute


def parse_time(text: str | None) -> list[str] | None:
    if text is None:
        return None
    parts = text.split(":")
    if len(parts) != 2 or not all(parts):
        raise click.BadParameter(f"expected START:END (e.g. 1990-01-01:2019-12-31); got {text!r}")
    return parts


@click.group(name="faconvlstm")
@click.version_option(faconvlstm.__version__, prog_name="faconvlstm")
@click.option("--tune-allocator/--system-allocator", default=True, show_default=True,
              envvar="FACONVLSTM_TUNE_ALLOCATOR",
              help="Keep freed memory in the process (glibc), which speeds up training on CPU "
              "at the cost of holding on to the peak memory; see docs/layer.md.")
def main(tune_allocator: bool):
    """Spatiotemporal embeddings of gridded climate data with FAConvLSTM."""
    allocator = keep_freed_memory() if tune_allocator else "unchanged (--system-allocator)"
    console.print(
        f"[dim]faconvlstm {faconvlstm.__version__} on the Keras '{faconvlstm.backend()}' "
        f"backend; allocator {allocator}[/]"
    )


@main.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--years", default=4, show_default=True, help="Length of the series in years.")
@click.option("--calendar", default="standard", show_default=True)
@click.option("--freq", default="D", show_default=True, help="Time step (D daily, MS monthly).")
@click.option("--nlat", default=24, show_default=True)
@click.option("--nlon", default=36, show_default=True)
@click.option("--seed", default=0, show_default=True)
@user_errors
def synth(out, years, calendar, freq, nlat, nlon, seed):
    """Write the synthetic dataset (with its ground-truth factors) to OUT (NetCDF)."""
    import xarray as xr

    from faconvlstm.data.synthetic import write_synthetic_dataset

    write_synthetic_dataset(
        out, years=years, calendar=calendar, freq=freq, nlat=nlat, nlon=nlon, seed=seed
    )
    dataset = xr.open_dataset(out)
    summary(
        f"Wrote {out}",
        {
            "time steps": dataset.sizes["time"],
            "grid": f"{dataset.sizes['lat']} x {dataset.sizes['lon']}",
            "variables": ", ".join(v for v in dataset.data_vars if not v.startswith("factor_")),
            "factors": ", ".join(v for v in dataset.data_vars if v.startswith("factor_")),
        },
    )


def command_line(context: click.Context) -> str:
    """The command as it ran, rebuilt from its parsed parameters (for reports)."""
    words = [context.command_path]
    for parameter in context.command.params:
        value = context.params.get(parameter.name)
        if value in (None, ()) or value == "":
            continue
        if parameter.param_type_name == "argument":
            words.extend(str(v) for v in (value if isinstance(value, tuple) else [value]))
        elif getattr(parameter, "is_flag", False) and parameter.secondary_opts:
            words.append(parameter.opts[0] if value else parameter.secondary_opts[0])
        elif isinstance(value, tuple):  # a repeatable option, once per value
            for item in value:
                words.extend([parameter.opts[0], str(item)])
        else:
            words.extend([parameter.opts[0], str(value)])
    return " ".join(words)


def data_selection(data, variables, region, time_range, season, coarsen, time_dim=None,
                   time_units=None):
    """The DATA arguments and selection options as a :class:`faconvlstm.pipeline.DataSelection`."""
    from faconvlstm.pipeline import DataSelection

    return DataSelection(
        source=data_source(data), variables=names(variables), region=parse_region(region),
        time=parse_time(time_range), season=season, coarsen=coarsen, time_dim=time_dim,
        time_units=time_units,
    )


def model_settings(filters, embedding_dim, window, cell, attention_every,
                   precision="float32") -> dict:
    settings = {
        "filters": [int(part) for part in filters.split(",")],
        "embedding_dim": embedding_dim,
        "window": window,
        "cell": cell,
        "precision": precision,
    }
    if attention_every is not None:
        settings["layer_options"] = {"attention_every": attention_every}
    return settings


@main.command()
@click.argument("data", nargs=-1, required=True)
@click.option("--vars", "variables", required=True, help="Channels, e.g. t2m,z@500,t@850.")
@click.option("--out", "run_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@selection_options
@click.option("--epochs", default=100, show_default=True,
              help="The most epochs; training stops earlier once the validation loss has "
                   "stopped improving.")
@click.option("--patience", default=6, show_default=True,
              help="Stop after this many epochs without improvement of the validation loss.")
@click.option("--min-steps", default=300, show_default=True,
              help="Optimizer steps before training may stop (--epochs still caps it).")
@click.option("--batch-size", default=8, show_default=True)
@click.option("--learning-rate", default=6e-3, show_default=True,
              help="Initial learning rate; halved whenever the validation loss plateaus.")
@click.option("--stride", type=int,
              help="Steps between training windows. Default: 4, or 1 on data too short to "
                   "fill an epoch with windows 4 apart.")
@click.option("--validation-years", type=int,
              help="Hold out the last N calendar years for validation (0: none). Default: the "
                   "last ~15 % of the timesteps, at least two windows.")
@model_options
@click.option("--cell", type=click.Choice(["fa", "convlstm"]), default="fa", show_default=True)
@click.option("--attention-every", type=int, help="Axial attention period (0: off).")
@click.option("--anomalies/--no-anomalies", default=False, show_default=True)
@click.option("--detrend/--no-detrend", default=False, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--precision", type=click.Choice(["float32", "mixed_float16", "mixed_bfloat16"]),
              default="float32", show_default=True,
              help="Dtype policy of the encoder and decoder (mixed: half-precision compute).")
@click.option("--devices", default=1, show_default=True,
              help="Train data-parallel on this many devices (JAX: one process; PyTorch: "
                   "one process each, started under torchrun; see docs/scale.md).")
@user_errors
def train(data, variables, run_dir, time_dim, time_units, region, time_range, season, coarsen,
          log1p, epochs,
          patience, min_steps, batch_size, learning_rate, stride, validation_years, filters,
          embedding_dim, window, cell, attention_every, anomalies, detrend, seed, precision,
          devices):
    """Train on DATA (NetCDF files, a glob or a Zarr store); resumes if RUN_DIR has a run."""
    from faconvlstm.pipeline import TrainingSettings, fit

    selection = data_selection(data, variables, region, time_range, season, coarsen, time_dim,
                               time_units)
    settings = TrainingSettings(
        epochs=epochs, patience=patience, min_steps=min_steps, batch_size=batch_size,
        learning_rate=learning_rate, window_stride=stride,
        validation_years=validation_years, seed=seed, log1p=names(log1p), anomalies=anomalies,
        detrend=detrend, devices=devices,
    )
    with one_line_data_warnings():
        result = fit(
            selection, run_dir,
            model_settings(filters, embedding_dim, window, cell, attention_every, precision),
            settings,
        )
    if not result.is_chief:
        return
    last = {  # the epoch times are summed up in "time"
        f"final {key}": f"{values[-1]:.4g}" for key, values in result.history.items()
        if values and key != "epoch_seconds"
    }
    summary(
        f"Trained {run_dir}",
        {
            "epochs": f"{result.epochs_done} (resumed after {result.resumed_from})"
            if result.resumed_from else result.epochs_done,
            "parameters": f"{result.parameters:,} (encoder {result.encoder_parameters:,})",
            **split_rows(result.split),
            "batches per epoch": result.train_steps,
            "time": f"{result.seconds:.1f} s",
            **last,
            **convergence_rows(result),
        },
    )


def convergence_rows(result) -> dict[str, str]:
    """Summary rows: whether training converged, and the variance the model explains."""
    where = "validation" if result.validation_steps else "training"
    if result.converged:
        stopped = "yes: the loss stopped improving"
    else:
        stopped = "no: stopped at --epochs while the loss still improved; train longer"
    return {
        "converged": stopped,
        f"variance explained ({where})": f"{result.variance_explained:.1%} by the "
        f"reconstruction, {result.eof_variance_explained:.1%} by the leading "
        f"{result.eof_modes} EOFs",
    }


@contextlib.contextmanager
def one_line_data_warnings() -> Iterator[None]:
    """Inside: a shortened window, or files cut or restamped to fit each other, is shown once
    as one ``Warning:`` line (every run of an evaluation reads the same data); other warnings
    as usual."""
    from faconvlstm.data.alignment import DataAligned
    from faconvlstm.data.splits import WindowAdapted

    shown = set()
    with warnings.catch_warnings():
        show = warnings.showwarning

        def one_line(message, category, *args, **kwargs):
            if not issubclass(category, (WindowAdapted, DataAligned)):
                show(message, category, *args, **kwargs)
            elif str(message) not in shown:
                shown.add(str(message))
                console.print(f"[yellow]Warning:[/] {escape(str(message))}")

        warnings.showwarning = one_line
        yield


def split_rows(split: dict) -> dict[str, str]:
    """Summary rows of a run's window and validation part
    (:class:`faconvlstm.data.splits.Split` as JSON)."""
    window = f"{split['window']} steps"
    if split["change"]:
        window += f" ({split['requested_window']} requested; {split['change']})"
    held_out = split["steps"] - split["cut"]
    validation = "none"
    if held_out:
        validation = (f"the last {held_out} of {split['steps']} timesteps "
                      f"({split['validation_period']})")
    return {"window": window, "validation": validation}


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("data", nargs=-1)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--time", "time_range", help="START:END to embed (default: the run's).")
@click.option("--align", type=click.Choice(["center", "end"]), default="center",
              show_default=True,
              help="Embed each timestep from the window where it sits nearest the center (for "
              "regimes), or from the window that ends at it (causal: nothing after it is "
              "seen, for forecasting).")
@click.option("--stride", type=int,
              help="Compute windows N steps apart, each timestep from the best of them for "
                   "--align: N times less work. Default: half the window (1: a window per "
                   "timestep).")
@click.option("--batch-size", default=32, show_default=True)
@user_errors
def embed(run_dir, data, out, time_range, align, stride, batch_size):
    """Embed DATA (default: the run's data) with the model in RUN_DIR; writes NetCDF."""
    from faconvlstm.pipeline import embed as embed_data

    source = data_source(data) if data else None
    with one_line_data_warnings():
        dataset = embed_data(run_dir, source, out, parse_time(time_range), batch_size,
                             progress=True, align=align, stride=stride)
    stride = dataset.attrs["window_stride"]
    summary(
        f"Wrote {out}",
        {
            "time steps": dataset.sizes["time"],
            "embedding size": dataset.sizes["embedding"],
            "window alignment": align,
            "windows computed": f"every {stride} steps" if stride > 1 else "one per timestep",
            "time range": f"{dataset['time'].values[0]} .. {dataset['time'].values[-1]}",
            "without embedding (gap-free run shorter than the window)": dataset.attrs[
                "uncovered_timesteps"
            ],
        },
    )


@main.command()
@click.argument("data", nargs=-1, required=True)
@click.option("--var", "variable", required=True, help="The variable, e.g. sst or z@500.")
@click.option("--region", required=True,
              help="LAT_MIN,LAT_MAX,LON_MIN,LON_MAX of the box, e.g. -5,5,190,240 (Nino 3.4).")
@click.option("--name", help="The index's column name (default: the variable's).")
@click.option("--time", "time_range", help="START:END of the data to use.")
@click.option("--season", help="Months to keep, e.g. DJF or NDJFM.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@time_axis_options
@user_errors
def index(data, variable, region, name, time_range, season, out, time_dim, time_units):
    """Write a box index of DATA as CSV (for evaluate --index): the area-mean seasonal anomaly."""
    from faconvlstm.data.indices import region_index, write_index

    selection = data_selection(data, variable, region, time_range, season, None, time_dim,
                               time_units)
    with one_line_data_warnings():
        series = region_index(selection.load().load())
    write_index(series, out, name or series.name)
    summary(f"Wrote {out}", {
        "time steps": series.sizes["time"],
        "standard deviation": f"{float(series.std()):.3g} {series.attrs['units']}",
    })


@main.command()
@click.argument("embeddings", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--k", type=int, default=None, help="Number of regimes (default: best silhouette).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--seed", default=0, show_default=True)
@user_errors
def cluster(embeddings, k, out, seed):
    """KMeans regimes of EMBEDDINGS, with scores, persistence, transitions and composites."""
    from faconvlstm.pipeline import cluster as cluster_embeddings

    result = cluster_embeddings(embeddings, k, out, seed=seed)
    labels = result.labels
    rows = {f"{key}": f"{value:.3f}" for key, value in result.metrics.items()}
    rows["regime frequency"] = ", ".join(f"{f:.0%}" for f in labels["frequency"].values)
    rows["persistence (steps)"] = ", ".join(f"{p:.1f}" for p in labels["persistence"].values)
    rows["files"] = ", ".join(str(path) for path in result.files)
    summary(f"{labels.attrs['k']} regimes", rows)


@main.command()
@click.argument("data", nargs=-1)
@click.option("--vars", "variables", help="Channels (required with DATA), e.g. t2m,z@500.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--seeds", default=3, show_default=True)
@click.option("--epochs", default=100, show_default=True,
              help="The most epochs of each model; each stops once it has converged.")
@click.option("--k", default=4, show_default=True)
@selection_options
@click.option("--anomalies/--no-anomalies", default=True, show_default=True)
@click.option("--detrend/--no-detrend", default=False, show_default=True,
              help="Subtract each cell's linear trend (e.g. a warming scenario's).")
@click.option("--ablations/--no-ablations", default=True, show_default=True)
@model_options
@click.option("--index", "index_files", multiple=True, type=click.Path(dir_okay=False),
              help="Index time series to probe and forecast (CSV: dates then one column per "
              "index; or NetCDF); repeatable.")
@click.option("--validation-years", type=int,
              help="Hold out the last N calendar years in every run; held-out skill is scored "
                   "on them. Default: the last ~15 % of the timesteps.")
@click.option("--leads", help="Leads in timesteps of the skill table, e.g. 1,3,6,9. Default: by "
                              "the time step (months 1,3,6,9; days 1,3,7,14; years 1,2,3).")
@user_errors
def evaluate(data, variables, out_dir, seeds, epochs, k, time_dim, time_units, region,
             time_range, season, coarsen,
             log1p, anomalies, detrend, ablations, filters, embedding_dim, window, index_files,
             validation_years, leads):
    """FA against its ConvLSTM2D twins and EOF on DATA (default: synthetic); writes a report."""
    from faconvlstm.evaluation.harness import EvaluationSettings
    from faconvlstm.evaluation.harness import evaluate as run_evaluation
    from faconvlstm.evaluation.report import write_report

    selection = None
    if data:
        if not variables:
            raise click.UsageError("--vars is required with DATA.")
        selection = data_selection(data, variables, region, time_range, season, coarsen,
                                   time_dim, time_units)
    settings = EvaluationSettings(
        seeds=seeds, epochs=epochs, k=k, anomalies=anomalies, detrend=detrend,
        ablations=ablations,
        log1p=names(log1p),
        model=model_settings(filters, embedding_dim, window, "fa", None),
        index_files=[os.path.abspath(path) for path in index_files],
        validation_years=validation_years,
        leads=tuple(int(lead) for lead in names(leads)) if leads else None,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    with one_line_data_warnings():
        evaluation = run_evaluation(selection, out_dir, settings)
    report = write_report(evaluation, out_dir, command_line(click.get_current_context()))
    summary(
        f"Evaluation in {out_dir} ({evaluation.seconds / 60:.1f} min)",
        {
            "report": str(report),
            **{
                f"{name}: mean CKA between seeds": f"{values['mean CKA between seeds']:.3f}"
                for name, values in evaluation.stability.items()
            },
        },
    )


@main.command()
@click.option("--out", "out_dir", default="faconvlstm-demo", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--years", default=4, show_default=True)
@click.option("--epochs", default=6, show_default=True)
@click.option("--k", default=4, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the probe table and timings as JSON.")
@user_errors
def demo(out_dir, years, epochs, k, seed, json_path):
    """Everything on the built-in synthetic dataset: synth, train, embed, cluster, probe."""
    from faconvlstm.evaluation.demo import run_demo

    result = run_demo(out_dir, years=years, epochs=epochs, k=k, seed=seed)
    table = Table(title="Linear-probe R^2 of the ground-truth factors (blocked 5-fold CV)")
    table.add_column("factor")
    for name in result.runs:
        table.add_column(f"{name} embeddings", justify="right")
    table.add_column("seasonal encoding alone (floor)", justify="right")
    for factor, floor in result.floor.items():
        cells = [f"{run.probes[factor]:.3f}" for run in result.runs.values()]
        table.add_row(factor, *cells, f"{floor:.3f}")
    console.print(table)
    for name, run in result.runs.items():
        summary(
            f"{name}: {out_dir / name}",
            {
                "parameters": f"{run.training.parameters:,} "
                f"(encoder {run.training.encoder_parameters:,})",
                "final loss": f"{run.training.history['loss'][-1]:.4f}",
                **{key: f"{value:.3f}" for key, value in run.clusters.metrics.items()},
                "regime persistence (steps)": ", ".join(
                    f"{p:.1f}" for p in run.clusters.labels["persistence"].values
                ),
                "maps": str(run.clusters.files[-1]) if run.clusters.files else "",
            },
        )
    console.print(f"Demo finished in {result.seconds:.0f} s.")
    if json_path is not None:
        from faconvlstm.data.storage import atomic_path

        record = {
            "floor": result.floor,
            "runs": {
                name: {
                    "probes": run.probes,
                    "history": run.training.history,
                    "clustering": run.clusters.metrics,
                }
                for name, run in result.runs.items()
            },
            "seconds": result.seconds,
            "backend": faconvlstm.backend(),
        }
        with atomic_path(json_path) as temporary:
            temporary.write_text(json.dumps(record, indent=2) + "\n")
