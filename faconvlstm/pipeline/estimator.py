"""``FAEmbedding``: the pipeline as an estimator on xarray objects, for notebooks.

``FAEmbedding(...).fit(ds, variables=...)`` trains through :func:`~faconvlstm.pipeline.fit`
into a run directory (a temporary one unless ``run_dir`` is given), so the estimator, the
CLI and every run directory share one code path; ``transform`` embeds through
:class:`~faconvlstm.pipeline.embedding.TrainedRun`. A saved estimator is a run directory
plus ``estimator.json``: ``faconvlstm embed`` and ``cluster`` read it like any run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import xarray as xr

from faconvlstm.data.calendar import time_steps_in_days
from faconvlstm.data.io import Source, open_dataset, standardize_axes
from faconvlstm.errors import InputError
from faconvlstm.pipeline.embedding import TrainedRun, embedding_array
from faconvlstm.pipeline.runs import DataSelection, TrainingSettings, read_json, write_json
from faconvlstm.pipeline.training import TrainingResult, fit

#: The estimator's settings, beside the run's files.
ESTIMATOR_FILE = "estimator.json"
#: The model settings the constructor names; the others go in ``model_options``.
MODEL_ARGUMENTS = ("embedding_dim", "window", "filters", "cell")
#: The training settings the constructor names; the others go in ``training_options``.
TRAINING_ARGUMENTS = ("anomalies", "detrend", "epochs", "validation_years", "seed")


class FAEmbedding:
    """Per-timestep embeddings of gridded fields, in the style of xeofs and scikit-learn.

    ``embedding_dim``, ``window``, ``filters`` and ``cell`` set the model
    (:class:`~faconvlstm.models.ModelConfig`; ``model_options`` any other of its settings);
    ``anomalies``, ``detrend``, ``epochs``, ``validation_years`` and ``seed`` the training
    (:class:`~faconvlstm.pipeline.TrainingSettings`; ``training_options`` the others).
    ``progress`` shows rich progress bars (they render in Jupyter too).

    After ``fit``: ``transform`` gives embeddings ``(time, embedding)``,
    ``inverse_transform`` fields from embeddings, ``predict`` forecasts, ``components`` the
    decoder's spatial patterns, all labelled and in physical units; ``save`` and
    :meth:`load` round-trip the fitted estimator.
    """

    def __init__(
        self,
        embedding_dim: int = 16,
        window: int = 16,
        filters: Sequence[int] = (16, 16),
        cell: str = "fa",
        *,
        anomalies: bool = False,
        detrend: bool = False,
        epochs: int = 100,
        validation_years: int | None = None,
        seed: int = 0,
        model_options: dict[str, Any] | None = None,
        training_options: dict[str, Any] | None = None,
        progress: bool = True,
    ):
        self.embedding_dim = embedding_dim
        self.window = window
        self.filters = tuple(filters)
        self.cell = cell
        self.anomalies = anomalies
        self.detrend = detrend
        self.epochs = epochs
        self.validation_years = validation_years
        self.seed = seed
        self.model_options = dict(model_options or {})
        self.training_options = dict(training_options or {})
        self.progress = progress
        self.run_dir: Path | None = None
        self.training_result_: TrainingResult | None = None
        self._run: TrainedRun | None = None

    # -- settings -------------------------------------------------------------------------

    def get_params(self) -> dict[str, Any]:
        """The constructor's arguments, as given."""
        names = (*MODEL_ARGUMENTS, *TRAINING_ARGUMENTS, "model_options", "training_options",
                 "progress")
        return {name: getattr(self, name) for name in names}

    def _model(self) -> dict[str, Any]:
        model = {name: getattr(self, name) for name in MODEL_ARGUMENTS}
        return {**model, "filters": list(self.filters), **self.model_options}

    def _training(self) -> TrainingSettings:
        named = {name: getattr(self, name) for name in TRAINING_ARGUMENTS}
        return TrainingSettings(**{**named, **self.training_options})

    def __repr__(self) -> str:
        defaults = FAEmbedding().get_params()
        changed = [f"{name}={value!r}" for name, value in self.get_params().items()
                   if value != defaults[name]]
        text = f"FAEmbedding({', '.join(changed)})"
        if self._run is None:
            return f"{text}, not fitted"
        grid = self._run.record["grid"]
        return (f"{text}, fitted on {', '.join(grid['channel'])} over "
                f"{len(grid['lat'])}x{len(grid['lon'])} cells (lat x lon), window "
                f"{self._run.config.window}, forecasts {self._run.config.forecast_horizon} "
                f"steps ahead; run in {self.run_dir}")

    # -- fitting --------------------------------------------------------------------------

    def fit(
        self,
        data: Source,
        variables: str | Sequence[str] | None = None,
        *,
        time_dim: str | None = None,
        time_units: str | None = None,
        region: Sequence[float] | None = None,
        time: Sequence[str] | None = None,
        season: str | None = None,
        coarsen: int | None = None,
        run_dir: str | os.PathLike | None = None,
    ) -> FAEmbedding:
        """Train on ``data``: a Dataset, a DataArray or a list of them (or files).

        ``variables`` as ``--vars`` (``"sst"``, ``["u", "v"]``, ``"z@500"``; default: every
        variable on the time, lat and lon axes alone); ``time_dim``/``time_units`` fix a time
        axis whose metadata are missing; ``region``, ``time``, ``season`` and ``coarsen`` as
        in :class:`~faconvlstm.pipeline.DataSelection`. The run is written to ``run_dir``
        (default: a temporary directory removed with the estimator); a ``run_dir`` holding
        the same run resumes it. Returns ``self``.
        """
        if variables is None:
            variables = _variables_on_the_grid(data, time_dim, time_units)
        names = [variables] if isinstance(variables, str) else list(variables)
        selection = DataSelection(
            source=data, variables=names, region=None if region is None else list(region),
            time=None if time is None else list(time), season=season, coarsen=coarsen,
            time_dim=time_dim, time_units=time_units,
        )
        self.run_dir = Path(run_dir) if run_dir is not None else self._temporary_run_dir()
        self.training_result_ = fit(selection, self.run_dir, self._model(), self._training(),
                                    progress=self.progress)
        write_json(self.run_dir / ESTIMATOR_FILE, {"params": self._json_params()})
        self._run = TrainedRun(self.run_dir)
        return self

    def _temporary_run_dir(self) -> Path:
        folder = Path(tempfile.mkdtemp(prefix="faconvlstm-"))
        weakref.finalize(self, shutil.rmtree, folder, ignore_errors=True)
        return folder / "run"

    def _json_params(self) -> dict[str, Any]:
        return {**self.get_params(), "filters": list(self.filters)}

    # -- using the fitted model -----------------------------------------------------------

    @property
    def fitted(self) -> TrainedRun:
        """The trained run (model, preprocessing); an ``InputError`` before ``fit``."""
        if self._run is None:
            raise InputError("This FAEmbedding is not fitted; call fit(data) first.")
        return self._run

    def _selection(self) -> DataSelection:
        """The fitted selection (variables, region, ...), to apply to new data."""
        return DataSelection(**{**self.fitted.record["data"], "source": None})

    def transform(self, data: Source, align: str = "center", batch_size: int = 32,
                  stride: int | None = None) -> xr.DataArray:
        """Embeddings ``(time, embedding)`` of ``data`` (same variables, region, grid).

        Each timestep is embedded from the window where it sits nearest the center
        (``align="center"``, for regimes) or from the window that ends at it (``"end"``:
        causal, for forecasting); NaN where no window fits. Windows are computed ``stride``
        steps apart (default: half the window; 1: one per timestep), ``stride`` times less work
        (:func:`~faconvlstm.data.windows.embedding_windows`). Carries ``data``'s time
        coordinate and attributes, plus the run's (``alignment``, ``run_dir``, ...).
        """
        fields = self._selection().load(data)
        embeddings = embedding_array(self.fitted, fields, batch_size, self.progress, align,
                                     stride)
        return embeddings.assign_attrs({**_attributes(data), **embeddings.attrs})

    def inverse_transform(self, embeddings: xr.DataArray) -> xr.DataArray:
        """Fields ``(time, lat, lon, channel)`` in physical units decoded from embeddings
        ``(time, embedding)`` (from :meth:`transform`, or any of the same width)."""
        embeddings = _checked_embeddings(embeddings, self.fitted.config.embedding_dim)
        decoder = self.fitted.autoencoder.get_layer("decoder")
        values = keras.ops.convert_to_numpy(decoder(embeddings.values.astype("float32")))
        return self._physical(values, embeddings["time"])

    def predict(self, data: Source, lead: int, batch_size: int = 32) -> xr.DataArray:
        """The model's forecast ``lead`` steps ahead, made at each timestep of ``data`` from
        the window that ends at it: fields ``(time, lat, lon, channel)`` in physical units.

        ``time`` is the valid time (the forecast's time plus ``lead`` typical steps);
        ``initial_time`` the timestep it was made at. NaN where no window fits.
        """
        horizon = self.fitted.config.forecast_horizon
        if not (isinstance(lead, (int, np.integer)) and 1 <= lead <= horizon):
            raise InputError(
                f"The model forecasts 1 to {horizon} steps ahead; got lead {lead!r}."
                if horizon else
                "The model was trained without forecasts (forecast_horizon 0); it cannot "
                "predict."
            )
        fields = self._selection().load(data)

        def forecast(batch):
            return {"forecast": self.fitted.autoencoder.predict_on_batch(batch)["forecast"][
                :, :, lead - 1]}

        values = self.fitted.per_timestep(fields, forecast, batch_size, self.progress,
                                          align="end")["forecast"]
        step = np.median(time_steps_in_days(fields["time"])) * np.timedelta64(86400, "s")
        valid = xr.DataArray(fields["time"].values + lead * step, dims="time")
        predicted = self._physical(values, valid)
        return predicted.assign_coords(initial_time=("time", fields["time"].values)).assign_attrs(
            lead=int(lead), alignment="end"
        )

    def components(self) -> xr.DataArray:
        """The decoder's learned patterns ``(embedding, lat, lon, channel)``: the field change
        per unit of each embedding axis, in physical units per unit (log1p units for log1p
        channels), as an EOF is the pattern of its PC."""
        config = self.fitted.config
        if not config.decoder_patterns:
            raise InputError(
                "This model's decoder has no patterns (decoder_patterns=False); it has no "
                "components."
            )
        kernel = keras.ops.convert_to_numpy(
            self.fitted.autoencoder.get_layer("decoder").pattern_kernel
        )
        patterns = kernel.reshape(config.embedding_dim, *config.grid, config.channels)
        scale = self.fitted.preprocessor.steps[-1].std.astype("float32")
        return xr.DataArray(
            patterns * scale, dims=("embedding", "lat", "lon", "channel"),
            coords=self._grid_coords(), name="components",
            attrs={"long_name": "decoder pattern per unit of the embedding axis"},
        )

    def _grid_coords(self) -> dict[str, Any]:
        grid = self.fitted.record["grid"]
        return {"lat": grid["lat"], "lon": grid["lon"], "channel": grid["channel"],
                "units": ("channel", grid["units"])}

    def _physical(self, values: np.ndarray, time: xr.DataArray) -> xr.DataArray:
        """Model-space fields ``(time, lat, lon, channel)`` on ``time`` in physical units."""
        fields = xr.DataArray(values, dims=("time", "lat", "lon", "channel"),
                              coords={"time": time.values, **self._grid_coords()})
        return self.fitted.preprocessor.inverse_transform(fields).rename("fields")

    # -- persistence ----------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Copy the fitted run to ``path``, a new directory (written whole or not at all)."""
        path = Path(path)
        if path.exists():
            raise InputError(f"'{path}' exists; save to a new path.")
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
        try:
            shutil.copytree(self.fitted.run_dir, staging, dirs_exist_ok=True)
            os.replace(staging, path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, progress: bool = True) -> FAEmbedding:
        """The estimator :meth:`save` wrote to ``path`` (used in place, not copied)."""
        path = Path(path)
        if not (path / ESTIMATOR_FILE).is_file():
            raise InputError(
                f"'{path}' holds no saved FAEmbedding ({ESTIMATOR_FILE} is missing); expected "
                "a directory written by FAEmbedding.save."
            )
        saved = read_json(path / ESTIMATOR_FILE)
        estimator = cls(**{**saved["params"], "progress": progress})
        estimator.run_dir, estimator._run = path, TrainedRun(path)
        return estimator


def _variables_on_the_grid(data: Source, time_dim: str | None, time_units: str | None
                           ) -> list[str]:
    """The data variables of ``data`` on exactly the time, lat and lon axes."""
    ds = standardize_axes(open_dataset(data, time_dim=time_dim, time_units=time_units))
    names = [str(name) for name, array in ds.data_vars.items()
             if set(array.dims) == {"time", "lat", "lon"}]
    if not names:
        raise InputError(
            "No variable of the data lies on the time, lat and lon axes alone; name the "
            "variables (e.g. variables=['z@500'])."
        )
    return names


def _attributes(data: Source) -> dict[str, Any]:
    """The attributes of an xarray ``data`` source (of its first object); none for paths."""
    first = data[0] if isinstance(data, (list, tuple)) and data else data
    return dict(first.attrs) if isinstance(first, (xr.Dataset, xr.DataArray)) else {}


def _checked_embeddings(embeddings: xr.DataArray, width: int) -> xr.DataArray:
    if not isinstance(embeddings, xr.DataArray) or set(embeddings.dims) != {"time", "embedding"}:
        raise InputError(
            "Expected embeddings as a DataArray of dims (time, embedding), as transform "
            f"returns; got {type(embeddings).__name__} "
            f"{getattr(embeddings, 'dims', '')}."
        )
    embeddings = embeddings.transpose("time", "embedding")
    if embeddings.sizes["embedding"] != width:
        raise InputError(
            f"The embeddings have {embeddings.sizes['embedding']} axes; this model's have "
            f"{width}."
        )
    return embeddings
