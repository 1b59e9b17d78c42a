"""Preprocessing of the canonical fields: small fit/transform steps chained by a Preprocessor.

Every step follows the scikit-learn transformer idea: ``fit`` learns statistics on the training
years, ``transform`` applies them (lazily, so dask-backed fields stay dask-backed) and
``inverse_transform`` maps model-space fields back to physical units. The fitted state of every
step is plain NumPy arrays and values, saved with the model in one NetCDF file.

Fields are ``xarray.DataArray`` of dims ``("time", "lat", "lon", "channel")`` with NaN marking
invalid cells; statistics ignore NaN and NaN cells stay NaN. Steps, in the usual order:

- ``Log1p``: ``log1p`` of skewed, non-negative channels (precipitation); values below 0 (tiny
  negative precipitation from interpolation or packing) are clipped to 0 first, so the inverse
  returns 0 there.
- ``Detrend``: per cell and channel linear trend in fractional calendar years, subtracted.
- ``Anomalies``: per cell and channel smoothed seasonal climatology (mean + K harmonics of the
  fraction of the year in the data's own calendar), subtracted.
- ``Standardize``: per channel area-weighted (cos latitude) mean and standard deviation.

Cells that have no valid value in the training data get NaN statistics in the per-cell steps,
so they stay invalid (NaN) in every transformed field.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import dask
import numpy as np
import xarray as xr

from faconvlstm.data.calendar import decimal_year, seasonal_harmonics, year_fraction
from faconvlstm.data.io import CANONICAL_DIMS
from faconvlstm.data.storage import first_line, is_system_error, write_netcdf
from faconvlstm.errors import InputError
from faconvlstm.validation import non_negative_int

FORMAT_VERSION = 1
FORMAT_ATTRIBUTE = "faconvlstm_preprocessor_version"


def area_weights(lat: Sequence[float] | np.ndarray | xr.DataArray) -> np.ndarray:
    """Relative cell areas cos(latitude), clipped at 0, of latitudes (degrees north). ``(lat,)``."""
    degrees = np.asarray(lat, dtype="float64")
    if degrees.ndim != 1:
        raise InputError(f"Expected a 1-D latitude axis; got shape {degrees.shape}.")
    if np.any(np.abs(degrees) > 90.0 + 1e-6):
        raise InputError(
            f"Latitudes must lie in [-90, 90] degrees north; got values up to "
            f"{np.abs(degrees).max():g}."
        )
    return np.clip(np.cos(np.deg2rad(degrees)), 0.0, None)


def check_fields(fields: xr.DataArray) -> None:
    """Raise ``InputError`` unless ``fields`` is a DataArray in the canonical fields form."""
    if not isinstance(fields, xr.DataArray):
        kind = type(fields).__name__
        raise InputError(f"Expected the fields as an xarray.DataArray; got {kind}.")
    if fields.dims != CANONICAL_DIMS:
        raise InputError(f"The fields have dims {fields.dims}; expected {CANONICAL_DIMS}.")
    if "channel" not in fields.coords:
        raise InputError("The fields lack a `channel` coordinate; expected the channel names.")


def _channels(fields: xr.DataArray) -> list[str]:
    return [str(name) for name in fields["channel"].values]


def _check_channels(fields: xr.DataArray, expected: Sequence[str]) -> None:
    channels = _channels(fields)
    if channels != list(expected):
        raise InputError(
            f"The fields have channels {channels}; expected channels {list(expected)} "
            f"(the fitted names, in the same order)."
        )


def _check_grid(fields: xr.DataArray, lat: np.ndarray, lon: np.ndarray) -> None:
    for axis, fitted in (("lat", lat), ("lon", lon)):
        values = fields[axis].values
        if values.shape != fitted.shape or not np.allclose(values, fitted, atol=1e-6):
            raise InputError(
                f"The fields' {axis} axis ({values.size} values from {values.min():g} to "
                f"{values.max():g}) differs from the fitted one ({fitted.size} values from "
                f"{fitted.min():g} to {fitted.max():g}); per-cell statistics need the same grid."
            )


def _harmonic_basis(time: xr.DataArray, harmonics: int) -> np.ndarray:
    """Columns 1, cos(2 pi k phi), k = 1..K, sin(2 pi k phi), k = 1..K, of the year fraction
    (the order of saved coefficients). ``(T, 2K+1)``."""
    phi = year_fraction(time)
    return np.concatenate([np.ones((time.size, 1)), seasonal_harmonics(phi, harmonics)], axis=1)


def _along_time(values: np.ndarray, fields: xr.DataArray, *dims: str) -> xr.DataArray:
    """``values`` (time, ...) as a DataArray chunked in time like ``fields`` (if dask-backed)."""
    array = xr.DataArray(values, dims=("time", *dims))
    if fields.chunks is not None:
        array = array.chunk({"time": fields.chunksizes["time"]})
    return array


def _fit_basis(fields: xr.DataArray, basis: np.ndarray) -> np.ndarray:
    """Per cell and channel least-squares coefficients of the time ``basis`` ``(T, P)``.

    NaN times are left out of each cell's fit. Cells valid at all times or at none share one
    normal matrix; otherwise each cell gets its own (``lat x lon x channel x P x P`` values).
    Cells with no valid time get NaN. ``(lat, lon, channel, P)``.
    """
    values = fields.astype("float64")
    valid = values.notnull()
    terms = _along_time(basis, fields, "term")
    projections, counts = dask.compute(
        xr.dot(values.fillna(0.0), terms, dim="time").transpose("lat", "lon", "channel", "term"),
        valid.sum("time"),
    )
    counts = counts.values
    if np.isin(counts, (0, basis.shape[0])).all():
        normal = basis.T @ basis
    else:
        outer = _along_time(basis[:, :, None] * basis[:, None, :], fields, "term", "term_other")
        normal = xr.dot(valid.astype("float64"), outer, dim="time")
        normal = normal.transpose("lat", "lon", "channel", "term", "term_other").values
    coefficients = np.einsum(
        "...ij,...j->...i", np.linalg.pinv(normal, hermitian=True), projections.values
    )
    coefficients[counts == 0] = np.nan
    return coefficients


def _evaluate_basis(
    fields: xr.DataArray, basis: np.ndarray, coefficients: np.ndarray
) -> xr.DataArray:
    """The fitted curves at the fields' times, lazy when the fields are dask-backed."""
    terms = _along_time(basis, fields, "term")
    return xr.dot(terms, xr.DataArray(coefficients, dims=("lat", "lon", "channel", "term")))


def _require(state: dict[str, Any], keys: Sequence[str], step: str) -> None:
    missing = [key for key in keys if key not in state]
    if missing:
        raise InputError(f"The state of step '{step}' lacks {missing}; expected keys {list(keys)}.")


class Step:
    """One fit/transform step; subclasses define ``name`` and the methods below."""

    name: ClassVar[str] = ""

    def fit(self, fields: xr.DataArray) -> Step:
        """Learn the statistics from training ``fields``; returns ``self``."""
        raise NotImplementedError

    def transform(self, fields: xr.DataArray) -> xr.DataArray:
        """The fields in model space; same dims and coordinates, lazy for dask input."""
        raise NotImplementedError

    def inverse_transform(self, fields: xr.DataArray) -> xr.DataArray:
        """Model-space fields back to the step's input space."""
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """The fitted state: NumPy arrays and plain values (int, float, str)."""
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Step:
        """A fitted step rebuilt from ``state()``."""
        raise NotImplementedError

    def _require_fitted(self, fitted: Any) -> None:
        if fitted is None:
            raise InputError(f"The '{self.name}' step is not fitted; call fit first.")


class Log1p(Step):
    """``log1p`` of the named channels, after clipping values below 0 to 0; others pass through."""

    name = "log1p"

    def __init__(self, channels: Sequence[str]):
        if isinstance(channels, str) or not channels:
            raise InputError(
                f"`channels` must be a non-empty sequence of channel names; got {channels!r}."
            )
        self.channels = tuple(str(channel) for channel in channels)

    def fit(self, fields: xr.DataArray) -> Log1p:
        self._selected(fields)
        return self

    def transform(self, fields: xr.DataArray) -> xr.DataArray:
        return self._apply(fields, lambda selected: np.log1p(selected.clip(min=0)))

    def inverse_transform(self, fields: xr.DataArray) -> xr.DataArray:
        return self._apply(fields, np.expm1)

    def state(self) -> dict[str, Any]:
        return {"channels": np.array(self.channels)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Log1p:
        _require(state, ["channels"], cls.name)
        return cls([str(channel) for channel in np.atleast_1d(state["channels"])])

    def _apply(self, fields: xr.DataArray, function) -> xr.DataArray:
        """``function`` on the selected channels (others see zeros, then pass through)."""
        selected = self._selected(fields)
        return fields.where(~selected, function(fields.where(selected, 0)))

    def _selected(self, fields: xr.DataArray) -> xr.DataArray:
        check_fields(fields)
        unknown = [channel for channel in self.channels if channel not in _channels(fields)]
        if unknown:
            raise InputError(
                f"log1p channels {unknown} are not in the fields; expected some of "
                f"{_channels(fields)}."
            )
        return fields["channel"].isin(list(self.channels))


class _PerCellCurve(Step):
    """A curve in time fitted per cell and channel (a basis times coefficients), subtracted."""

    def __init__(self):
        self.coefficients: np.ndarray | None = None
        self.lat: np.ndarray | None = None
        self.lon: np.ndarray | None = None
        self.channel: np.ndarray | None = None

    def _basis(self, time: xr.DataArray) -> np.ndarray:
        raise NotImplementedError

    def _fit_curve(self, fields: xr.DataArray) -> None:
        check_fields(fields)
        self.lat = fields["lat"].values.astype("float64")
        self.lon = fields["lon"].values.astype("float64")
        self.channel = np.array(_channels(fields))
        self.coefficients = _fit_basis(fields, self._basis(fields["time"]))

    def _curve(self, fields: xr.DataArray) -> xr.DataArray:
        self._require_fitted(self.coefficients)
        check_fields(fields)
        _check_channels(fields, self.channel.tolist())
        _check_grid(fields, self.lat, self.lon)
        return _evaluate_basis(fields, self._basis(fields["time"]), self.coefficients)

    def transform(self, fields: xr.DataArray) -> xr.DataArray:
        return (fields - self._curve(fields)).astype(fields.dtype)

    def inverse_transform(self, fields: xr.DataArray) -> xr.DataArray:
        return (fields + self._curve(fields)).astype(fields.dtype)

    def _curve_state(self) -> dict[str, Any]:
        self._require_fitted(self.coefficients)
        return {
            "coefficients": self.coefficients,
            "lat": self.lat,
            "lon": self.lon,
            "channel": self.channel,
        }

    def _load_curve_state(self, state: dict[str, Any], terms: int) -> None:
        _require(state, ["coefficients", "lat", "lon", "channel"], self.name)
        self.lat = np.asarray(state["lat"], dtype="float64")
        self.lon = np.asarray(state["lon"], dtype="float64")
        self.channel = np.array([str(channel) for channel in np.atleast_1d(state["channel"])])
        self.coefficients = np.asarray(state["coefficients"], dtype="float64")
        expected = (self.lat.size, self.lon.size, self.channel.size, terms)
        if self.coefficients.shape != expected:
            raise InputError(
                f"The '{self.name}' coefficients have shape {self.coefficients.shape}; "
                f"expected {expected}."
            )


class Detrend(_PerCellCurve):
    """Per cell and channel least-squares linear trend in time, subtracted.

    Time is counted in fractional calendar years since the first training time (year plus the
    fraction of the year in the data's calendar); new times extrapolate the fitted line.
    """

    name = "detrend"

    def __init__(self):
        super().__init__()
        self.origin: float | None = None

    def fit(self, fields: xr.DataArray) -> Detrend:
        check_fields(fields)
        self.origin = float(decimal_year(fields["time"])[0])
        self._fit_curve(fields)
        return self

    def _basis(self, time: xr.DataArray) -> np.ndarray:
        years = decimal_year(time) - self.origin
        return np.stack([np.ones_like(years), years], axis=1)

    def state(self) -> dict[str, Any]:
        return {**self._curve_state(), "origin": self.origin}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Detrend:
        _require(state, ["origin"], cls.name)
        step = cls()
        step.origin = float(state["origin"])
        step._load_curve_state(state, terms=2)
        return step


class Anomalies(_PerCellCurve):
    """Per cell and channel seasonal climatology (mean + K annual harmonics), subtracted.

    The climatology is a least-squares fit of ``1, cos(2 pi k phi), sin(2 pi k phi)``,
    ``k = 1..harmonics``, with ``phi`` the fraction of the year in the data's own calendar
    (standard, noleap, 360_day, ...; mid-month for monthly data): a smoothed day-of-year cycle.
    """

    name = "anomalies"

    def __init__(self, harmonics: int = 3):
        super().__init__()
        self.harmonics = non_negative_int(harmonics, "harmonics")

    def fit(self, fields: xr.DataArray) -> Anomalies:
        self._fit_curve(fields)
        return self

    def _basis(self, time: xr.DataArray) -> np.ndarray:
        return _harmonic_basis(time, self.harmonics)

    def state(self) -> dict[str, Any]:
        return {**self._curve_state(), "harmonics": self.harmonics}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Anomalies:
        _require(state, ["harmonics"], cls.name)
        step = cls(int(state["harmonics"]))
        step._load_curve_state(state, terms=2 * step.harmonics + 1)
        return step


class Standardize(Step):
    """Per channel ``(x - mean) / std`` with area-weighted (cos latitude) statistics.

    Mean and (population) standard deviation are taken over every valid cell and time, each cell
    weighted by ``area_weights(lat)``.
    """

    name = "standardize"

    def __init__(self):
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.channel: np.ndarray | None = None

    def fit(self, fields: xr.DataArray) -> Standardize:
        check_fields(fields)
        weights = xr.DataArray(area_weights(fields["lat"].values), dims="lat")
        values, dims = fields.astype("float64"), ("time", "lat", "lon")
        # Two passes: computed together, the deviations would keep every chunk of the data
        # in memory until the mean is known.
        mean = values.weighted(weights).mean(dims).compute()
        std = np.sqrt(((values - mean) ** 2).weighted(weights).mean(dims)).compute()
        for name, center, spread in zip(_channels(fields), mean.values, std.values):
            if np.isnan(center):
                raise InputError(
                    f"Channel '{name}' has no valid cell with positive area weight in the "
                    f"training data; cannot standardize it."
                )
            if not spread > np.finfo("float32").eps * abs(center):
                raise InputError(
                    f"Channel '{name}' has zero standard deviation in the training data "
                    f"(constant {center:g}); cannot standardize it."
                )
        self.mean, self.std = mean.values, std.values
        self.channel = np.array(_channels(fields))
        return self

    def transform(self, fields: xr.DataArray) -> xr.DataArray:
        mean, std = self._statistics(fields)
        return (fields - mean) / std

    def inverse_transform(self, fields: xr.DataArray) -> xr.DataArray:
        mean, std = self._statistics(fields)
        return fields * std + mean

    def state(self) -> dict[str, Any]:
        self._require_fitted(self.mean)
        return {"mean": self.mean, "std": self.std, "channel": self.channel}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Standardize:
        _require(state, ["mean", "std", "channel"], cls.name)
        step = cls()
        step.mean = np.asarray(state["mean"], dtype="float64")
        step.std = np.asarray(state["std"], dtype="float64")
        step.channel = np.array([str(channel) for channel in np.atleast_1d(state["channel"])])
        if not step.mean.shape == step.std.shape == step.channel.shape:
            raise InputError(
                f"The '{cls.name}' state has mean {step.mean.shape}, std {step.std.shape} and "
                f"channel {step.channel.shape}; expected one value per channel."
            )
        return step

    def _statistics(self, fields: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
        self._require_fitted(self.mean)
        check_fields(fields)
        _check_channels(fields, self.channel.tolist())
        dtype = fields.dtype
        return (
            xr.DataArray(self.mean.astype(dtype), dims="channel"),
            xr.DataArray(self.std.astype(dtype), dims="channel"),
        )


STEPS: dict[str, type[Step]] = {
    step.name: step for step in (Log1p, Detrend, Anomalies, Standardize)
}


class Preprocessor:
    """A chain of steps fitted in order; checks channel names and units of the fields it gets.

    ``save`` writes one NetCDF file with every step's state (arrays as variables and plain
    values as attributes, prefixed ``step<i>_``), the step order, and the fitted channels and
    units; ``Preprocessor.load`` rebuilds it.
    """

    def __init__(self, steps: Sequence[Step]):
        for step in steps:
            if not isinstance(step, Step):
                raise InputError(
                    f"Preprocessor steps must be Step instances ({', '.join(STEPS)}); "
                    f"got {type(step).__name__}."
                )
        self.steps = list(steps)
        self.channels: list[str] | None = None
        self.units: list[str] | None = None

    def fit(self, fields: xr.DataArray) -> Preprocessor:
        """Record channels and units, then fit each step on the previous step's output."""
        self.units = self._units(fields)
        self.channels = _channels(fields)
        for step in self.steps:
            fields = step.fit(fields).transform(fields)
        return self

    def transform(self, fields: xr.DataArray) -> xr.DataArray:
        """Check channels and units against the fitted ones, then apply every step."""
        self._check_units(fields)
        for step in self.steps:
            fields = step.transform(fields)
        return fields

    def fit_transform(self, fields: xr.DataArray) -> xr.DataArray:
        return self.fit(fields).transform(fields)

    def inverse_transform(self, fields: xr.DataArray) -> xr.DataArray:
        """Model-space fields (reconstructions, composites) back to physical units."""
        self._require_fitted()
        check_fields(fields)
        _check_channels(fields, self.channels)
        for step in reversed(self.steps):
            fields = step.inverse_transform(fields)
        return fields

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted preprocessor to the NetCDF file ``path`` atomically."""
        self._require_fitted()
        dataset = xr.Dataset(
            {"units": ("channel", np.array(self.units))},
            coords={"channel": np.array(self.channels)},
            attrs={
                "title": "faconvlstm preprocessor",
                FORMAT_ATTRIBUTE: FORMAT_VERSION,
                "steps": " ".join(step.name for step in self.steps),
            },
        )
        for index, step in enumerate(self.steps):
            prefix = f"step{index}_"
            for key, value in step.state().items():
                if isinstance(value, np.ndarray):
                    dims = [f"{prefix}{key}_{axis}" for axis in range(value.ndim)]
                    dataset[prefix + key] = (dims, value)
                else:
                    dataset.attrs[prefix + key] = value
        return write_netcdf(dataset, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Preprocessor:
        """Rebuild a preprocessor written by ``save``."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"No preprocessor file at '{path}'.")
        try:
            dataset = xr.load_dataset(path)
        except (OSError, ValueError) as error:
            if is_system_error(error):
                raise
            reason = first_line(error)
            raise InputError(f"Cannot read the preprocessor file '{path}': {reason}") from error
        version = dataset.attrs.get(FORMAT_ATTRIBUTE)
        if version != FORMAT_VERSION or "units" not in dataset or "steps" not in dataset.attrs:
            raise InputError(
                f"'{path}' is not a faconvlstm preprocessor file of version {FORMAT_VERSION} "
                f"(found version {version})."
            )
        steps = []
        for index, name in enumerate(str(dataset.attrs["steps"]).split()):
            if name not in STEPS:
                raise InputError(
                    f"'{path}' names an unknown step '{name}'; expected one of {list(STEPS)}."
                )
            steps.append(STEPS[name].from_state(_step_state(dataset, f"step{index}_")))
        preprocessor = cls(steps)
        preprocessor.channels = [str(channel) for channel in dataset["channel"].values]
        preprocessor.units = [str(unit) for unit in dataset["units"].values]
        return preprocessor

    def _require_fitted(self) -> None:
        if self.channels is None:
            raise InputError("The preprocessor is not fitted; call fit first.")

    @staticmethod
    def _units(fields: xr.DataArray) -> list[str]:
        check_fields(fields)
        if "units" not in fields.coords or fields["units"].dims != ("channel",):
            raise InputError(
                "The fields lack a `units` coordinate along channel; expected the units of "
                "every channel."
            )
        return [str(unit) for unit in fields["units"].values]

    def _check_units(self, fields: xr.DataArray) -> None:
        self._require_fitted()
        units = self._units(fields)
        _check_channels(fields, self.channels)
        for channel, unit, fitted in zip(self.channels, units, self.units):
            if unit != fitted:
                raise InputError(
                    f"Channel '{channel}' has units '{unit}'; expected '{fitted}' (the units of "
                    f"the training data)."
                )


def _step_state(dataset: xr.Dataset, prefix: str) -> dict[str, Any]:
    arrays = {
        str(name)[len(prefix):]: dataset[name].values
        for name in dataset.data_vars
        if str(name).startswith(prefix)
    }
    values = {key[len(prefix):]: value for key, value in dataset.attrs.items()
              if key.startswith(prefix)}
    return {**arrays, **values}


def make_preprocessor(
    log1p: Sequence[str] = (),
    detrend: bool = False,
    anomalies: bool = False,
    harmonics: int = 3,
) -> Preprocessor:
    """The usual chain: Log1p (if channels given) -> Detrend -> Anomalies -> Standardize."""
    steps: list[Step] = [Log1p(log1p)] if log1p else []
    if detrend:
        steps.append(Detrend())
    if anomalies:
        steps.append(Anomalies(harmonics))
    steps.append(Standardize())
    return Preprocessor(steps)
