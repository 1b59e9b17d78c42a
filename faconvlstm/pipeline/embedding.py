"""``embed``: per-timestep embeddings of a climate file from a trained run."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

import faconvlstm
from faconvlstm.data.preprocessing import Preprocessor
from faconvlstm.data.storage import write_netcdf
from faconvlstm.data.windows import WindowDataset, centre_windows
from faconvlstm.models import ModelConfig, embedding_model
from faconvlstm.pipeline.progress import progress_bar
from faconvlstm.pipeline.runs import PREPROCESSOR_FILE, DataSelection, load_checkpoint, read_run

#: The embeddings' variable in the output; its dims are ``(time, embedding)``.
EMBEDDING_VARIABLE = "embeddings"


def _check_grid(fields: xr.DataArray, config: ModelConfig) -> None:
    grid = (fields.sizes["lat"], fields.sizes["lon"])
    if grid != config.grid:
        raise ValueError(
            f"The data's grid is {grid[0]}x{grid[1]} (lat x lon) but the model was trained on "
            f"{config.grid[0]}x{config.grid[1]}; select the same region and coarsening."
        )


def _source_attribute(source: str | os.PathLike | list) -> str | list[str]:
    """The data source as a NetCDF attribute that ``cluster`` can read back: a path or paths."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return [os.fspath(path) for path in source]


def embed_fields(
    run_dir: str | os.PathLike,
    fields: xr.DataArray,
    batch_size: int = 32,
    progress: bool = False,
) -> np.ndarray:
    """Embeddings ``(time, d)`` of fields in physical units ``(time, lat, lon, channel)``.

    The run's preprocessing is applied (channels and units checked) and each timestep is
    embedded from the window where it sits nearest the centre; NaN where no window fits.
    """
    config = ModelConfig.from_dict(read_run(run_dir)["model"])
    _check_grid(fields, config)
    preprocessor = Preprocessor.load(Path(run_dir) / PREPROCESSOR_FILE)
    fields = preprocessor.transform(fields)
    encoder = embedding_model(load_checkpoint(run_dir))
    starts, step_window, step_offset = centre_windows(fields["time"], config.window)
    values = np.full((fields.sizes["time"], config.embedding_dim), np.nan, dtype="float32")
    if starts.size:
        windows = WindowDataset(fields, config.window, starts, batch_size)
        with progress_bar(transient=True, disable=not progress) as bar:
            task = bar.add_task("embedding", total=len(windows), status="")
            embedded = []
            for index in range(len(windows)):
                embedded.append(np.asarray(encoder.predict_on_batch(windows[index])))
                bar.advance(task)
        embedded = np.concatenate(embedded)
        covered = step_window >= 0
        values[covered] = embedded[step_window[covered], step_offset[covered]]
    return values


def embed(
    run_dir: str | os.PathLike,
    source: str | list[str] | None = None,
    out: str | os.PathLike | None = None,
    time: list[str] | None = None,
    batch_size: int = 32,
    progress: bool = False,
) -> xr.Dataset:
    """Embeddings ``(time, embedding)`` of ``source`` (default: the run's own data).

    The run's variables, region, season and coarsening are applied; units are checked
    against the training data's. Each timestep takes its embedding from the window where it
    sits nearest the centre; timesteps in a gap-free stretch shorter than the window get NaN.
    Written atomically to ``out`` (NetCDF) when given.
    """
    record = read_run(run_dir)
    selection = DataSelection(**record["data"])
    fields = selection.load(source, time)
    values = embed_fields(run_dir, fields, batch_size, progress)
    config = ModelConfig.from_dict(record["model"])
    dataset = xr.Dataset(
        {
            EMBEDDING_VARIABLE: (
                ("time", "embedding"),
                values,
                {"long_name": "FAConvLSTM embedding", "units": "1"},
            )
        },
        coords={"time": fields["time"]},
        attrs={
            "title": "Per-timestep embeddings",
            "run_dir": str(Path(run_dir).resolve()),
            "source": _source_attribute(selection.source if source is None else source),
            "variables": ",".join(selection.variables),
            "cell": config.cell,
            "window": config.window,
            "backend": faconvlstm.backend(),
            "faconvlstm_version": faconvlstm.__version__,
            "uncovered_timesteps": int(np.isnan(values).any(axis=1).sum()),
        },
    )
    if out is not None:
        write_netcdf(dataset, out)
    return dataset
