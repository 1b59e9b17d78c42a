"""``embed``: per-timestep embeddings of a climate file from a trained run."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

import faconvlstm
from faconvlstm.data.io import is_in_memory
from faconvlstm.data.preprocessing import Preprocessor
from faconvlstm.data.storage import write_netcdf
from faconvlstm.data.windows import WindowDataset, embedding_stride, embedding_windows
from faconvlstm.errors import InputError
from faconvlstm.models import ModelConfig, embedding_model
from faconvlstm.pipeline.progress import progress_bar
from faconvlstm.pipeline.runs import PREPROCESSOR_FILE, DataSelection, load_checkpoint, read_run

#: The embeddings' variable in the output; its dims are ``(time, embedding)``.
EMBEDDING_VARIABLE = "embeddings"
#: The title of the files ``embed`` writes.
EMBEDDINGS_TITLE = "Per-timestep embeddings"


def _source_attribute(source) -> str | list[str]:
    """The data source as a NetCDF attribute that ``cluster`` can read back: a path or paths
    ("" for xarray objects, which ``cluster`` must be given again)."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if is_in_memory(source):
        return ""
    return [os.fspath(path) for path in source]


class TrainedRun:
    """A finished run loaded once: its model settings, fitted preprocessing and weights."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.record = read_run(run_dir)
        self.config = ModelConfig.from_dict(self.record["model"])
        self.preprocessor = Preprocessor.load(self.run_dir / PREPROCESSOR_FILE)
        self.autoencoder = load_checkpoint(run_dir)
        self.encoder = embedding_model(self.autoencoder)

    def preprocess(self, fields: xr.DataArray) -> xr.DataArray:
        """The run's preprocessing of ``(time, lat, lon, channel)`` fields in physical units.

        Channels and units are checked, and the grid must be the one the model was trained on.
        """
        grid = (fields.sizes["lat"], fields.sizes["lon"])
        if grid != self.config.grid:
            raise InputError(
                f"The data's grid is {grid[0]}x{grid[1]} (lat x lon) but the model was trained "
                f"on {self.config.grid[0]}x{self.config.grid[1]}; select the same region and "
                "coarsening."
            )
        return self.preprocessor.transform(fields)

    def per_timestep(
        self,
        fields: xr.DataArray,
        compute: Callable[[dict], dict[str, np.ndarray]],
        batch_size: int = 32,
        progress: bool = False,
        timesteps: np.ndarray | None = None,
        align: str = "center",
        stride: int | None = None,
    ) -> dict[str, np.ndarray]:
        """``compute`` on the windows of ``fields``, taken per timestep from its window.

        ``fields`` are in physical units; ``compute`` maps a batch of model inputs to arrays
        ``(B, T, ...)``. Returns each array as ``(time, ...)``: every timestep takes the
        position of the window where it sits nearest the center (``align="center"``) or of
        the window that ends at it (``"end"``: nothing after it is seen); NaN where no window
        fits; windows ``stride`` steps apart (by default half the window; 1: each timestep
        its own window) save work (:func:`~faconvlstm.data.windows.embedding_windows`).
        ``timesteps``, a ``(time,)`` bool mask, computes only the windows of those timesteps
        (NaN elsewhere); each gets the value it has when all are computed.
        """
        fields = self.preprocess(fields)
        window = self.config.window
        starts, step_window, step_offset = embedding_windows(fields["time"], window, align,
                                                             stride)
        if timesteps is not None:
            starts, step_window = _only_windows_of(starts, step_window, timesteps)
        windows = WindowDataset(fields, window, starts, batch_size) if starts.size else None
        computed: dict[str, list[np.ndarray]] = {}
        with progress_bar(transient=True, disable=not progress) as bar:
            task = bar.add_task("embedding", total=len(windows) if windows else 0, status="")
            for batch in windows.batches() if windows else ():
                for name, values in compute(batch).items():
                    computed.setdefault(name, []).append(np.asarray(values))
                bar.advance(task)
        covered = step_window >= 0
        result = {}
        for name, chunks in computed.items():
            per_window = np.concatenate(chunks)
            values = np.full((fields.sizes["time"], *per_window.shape[2:]), np.nan, "float32")
            values[covered] = per_window[step_window[covered], step_offset[covered]]
            result[name] = values
        return result

    def embed(
        self, fields: xr.DataArray, batch_size: int = 32, progress: bool = False,
        timesteps: np.ndarray | None = None, align: str = "center", stride: int | None = None,
    ) -> np.ndarray:
        """Embeddings ``(time, d)`` of fields in physical units ``(time, lat, lon, channel)``.

        Each timestep is embedded from the window where it sits nearest the center, or with
        ``align="end"`` from the window that ends at it (causal); NaN where no window fits,
        and where the ``(time,)`` bool mask ``timesteps`` is False. Windows are computed
        ``stride`` steps apart (default: half the window), each timestep from the best of
        them for ``align`` (:func:`~faconvlstm.data.windows.embedding_windows`): ``stride``
        times less work.
        """
        embedded = self.per_timestep(
            fields,
            lambda batch: {"embedding": self.encoder.predict_on_batch(batch)},
            batch_size,
            progress,
            timesteps,
            align,
            stride,
        )
        empty = np.full((fields.sizes["time"], self.config.embedding_dim), np.nan, "float32")
        return embedded.get("embedding", empty)


def _only_windows_of(
    starts: np.ndarray, step_window: np.ndarray, timesteps: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~faconvlstm.data.windows.embedding_windows`' ``starts`` and ``step_window`` restricted to the timesteps of
    the bool mask ``timesteps``: the other timesteps get ``-1`` (no window)."""
    timesteps = np.asarray(timesteps, dtype=bool)
    if timesteps.shape != step_window.shape:
        raise InputError(
            f"The timesteps to embed must be a mask of the {step_window.size} timesteps; got "
            f"shape {timesteps.shape}."
        )
    step_window = np.where(timesteps, step_window, -1)
    needed = np.unique(step_window[step_window >= 0])
    return starts[needed], np.where(step_window >= 0, np.searchsorted(needed, step_window), -1)


def embedding_array(
    run: TrainedRun,
    fields: xr.DataArray,
    batch_size: int = 32,
    progress: bool = False,
    align: str = "center",
    stride: int | None = None,
) -> xr.DataArray:
    """:meth:`TrainedRun.embed` of ``fields`` as a DataArray ``(time, embedding)`` on their
    time coordinate, with the run's attributes (``run_dir``, ``alignment``, ...)."""
    values = run.embed(fields, batch_size, progress, align=align, stride=stride)
    config = run.config
    return xr.DataArray(
        values,
        dims=("time", "embedding"),
        coords={"time": fields["time"]},
        name=EMBEDDING_VARIABLE,
        attrs={
            "long_name": "FAConvLSTM embedding",
            "units": "1",
            "run_dir": str(run.run_dir.resolve()),
            "variables": ",".join(str(name) for name in fields["channel"].values),
            "cell": config.cell,
            "window": config.window,
            "alignment": align,
            "window_stride": embedding_stride(stride, config.window),
            "backend": faconvlstm.backend(),
            "faconvlstm_version": faconvlstm.__version__,
            "uncovered_timesteps": int(np.isnan(values).any(axis=1).sum()),
        },
    )


#: Attributes of the embeddings that describe the run, not the variable; ``embed`` writes
#: them as the file's global attributes.
RUN_ATTRIBUTES = ("run_dir", "variables", "cell", "window", "alignment", "window_stride",
                  "backend", "faconvlstm_version", "uncovered_timesteps")


def embed(
    run_dir: str | os.PathLike,
    source: str | list[str] | None = None,
    out: str | os.PathLike | None = None,
    time: list[str] | None = None,
    batch_size: int = 32,
    progress: bool = False,
    align: str = "center",
    stride: int | None = None,
) -> xr.Dataset:
    """Embeddings ``(time, embedding)`` of ``source`` (default: the run's own data).

    The run's variables, region, season and coarsening are applied; units are checked
    against the training data's. Each timestep takes its embedding from the window where it
    sits nearest the center (``align="center"``, for regimes) or from the window that ends
    at it (``"end"``: causal, nothing after the timestep is seen, for forecasting); the
    ``alignment`` attribute says which. Timesteps in a gap-free stretch shorter than the
    window get NaN. Windows are computed ``stride`` steps apart, by default half the window
    (``stride`` times less work than one window per timestep, ``stride=1``; the
    ``window_stride`` attribute records it). Written atomically to ``out``
    (NetCDF) when given.
    """
    run = TrainedRun(run_dir)
    selection = DataSelection(**run.record["data"])
    fields = selection.load(source, time)
    embeddings = embedding_array(run, fields, batch_size, progress, align, stride)
    run_attributes = {key: embeddings.attrs.pop(key) for key in RUN_ATTRIBUTES}
    run_attributes["variables"] = ",".join(selection.variables)
    dataset = embeddings.to_dataset().assign_attrs(
        title=EMBEDDINGS_TITLE,
        source=_source_attribute(selection.source if source is None else source),
        **run_attributes,
    )
    if out is not None:
        write_netcdf(dataset, out)
    return dataset
