"""A synthetic North-Atlantic/European climate with known ground-truth factors.

``make_synthetic_dataset`` returns an ERA5-like ``xarray.Dataset`` on a regular grid
(latitude 20..75 N ascending, longitude 80 W..40 E in degrees east) whose variables are built
from five factors stored beside them as ``factor_<name>`` (dim ``time``):

- ``season``: the seasonal cycle, ``-cos(2 pi phi)`` with ``phi`` the fraction of the calendar
  year (-1 on 1 January, +1 in early July).
- ``enso``: an ENSO-like oscillation (period wandering between 3 and 5 years, plus
  intraseasonal red noise; zero mean, unit variance) with a dipole in the south-west
  (``ENSO_POLES``: a warm, low-pressure pole and a cold, high-pressure one).
- ``teleconnection``: the response of a remote north-eastern region (``TELECONNECTION_CENTER``)
  to ``enso``, lagged by ``TELECONNECTION_LAG_DAYS`` and smoothed, plus its own red noise (unit
  variance). No local receptive field links it to the ENSO dipole.
- ``regime``: discrete persistent weather regimes from a Markov chain (mean dwell
  ``REGIME_DWELL_DAYS`` days), each with a pressure dipole (NAO+, NAO-, blocking, ridge, ...).
- ``trend``: elapsed calendar years since the first step; ``t2m`` warms by ``WARMING_PER_YEAR``.

Variables (float32, CF attributes), physically coupled:

- ``t2m`` (K): 300 K at 20 N to 270 K at 75 N, a seasonal cycle growing inland and northward,
  the trend, the ENSO dipole, the teleconnection, and the regimes times the season (a high is
  warm in summer and cold in winter).
- ``msl`` (Pa): an Azores high and an Icelandic low, stronger in winter; regime dipoles; lows
  with warm ENSO and teleconnection anomalies.
- ``z`` (m2 s-2) on the pressure levels ``LEVELS``: hypsometric, from ``msl`` and ``t2m``.
- ``tp`` (mm day-1): ``2.5 (exp(max(latent, 0)) - 1)`` with a latent rising with low ``msl``
  anomalies and the storm track: zero on dry cells, strongly skewed.
- ``sst`` (K): a damped ``t2m``-like cycle and the ENSO dipole; NaN on land.

``land_mask`` (1 = land) is a continent east of a wavy coast near 5 W plus an island. Each
variable gets spatially smooth noise whose standard deviation is ``noise`` times the
variable's anomaly scale (the amplitude of its factor patterns).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy.signal import lfilter

from faconvlstm.data.calendar import time_steps_in_days, year_fraction
from faconvlstm.data.storage import write_netcdf
from faconvlstm.errors import InputError
from faconvlstm.validation import is_integer, is_number

FACTORS = ("season", "enso", "teleconnection", "regime", "trend")
CALENDARS = ("standard", "gregorian", "proleptic_gregorian", "julian", "noleap", "365_day",
             "all_leap", "366_day", "360_day")
LAT_RANGE = (20.0, 75.0)
LON_RANGE = (-80.0, 40.0)
LEVELS = (500, 850)
#: The channels the synthetic dataset provides (``z`` once per level of ``LEVELS``).
SYNTHETIC_VARIABLES = ["t2m", "msl", "z@500", "z@850", "tp", "sst"]

ENSO_POLES = ((27.0, -65.0), (41.0, -60.0))  # (lat, lon) of the warm and the cold pole
TELECONNECTION_CENTER = (64.0, 30.0)
ISLAND_CENTER = (64.0, -40.0)
TELECONNECTION_LAG_DAYS = 45.0
REGIME_DWELL_DAYS = 8.0
WARMING_PER_YEAR = 0.05  # K per year, t2m; the ocean warms by 60% of it

REGIME_DIPOLES = (  # name, (lat, lon) of the high, (lat, lon) of the low
    ("NAO_positive", (38.0, -28.0), (65.0, -25.0)),
    ("NAO_negative", (65.0, -25.0), (38.0, -28.0)),
    ("scandinavian_blocking", (60.0, 0.0), (42.0, -35.0)),
    ("atlantic_ridge", (50.0, -35.0), (60.0, -5.0)),
)

# Anomaly scales (the amplitude of the factor patterns); the noise is `noise` times these.
T2M_SCALE = 2.0  # K
MSL_SCALE = 800.0  # Pa
SST_SCALE = 0.6  # K
PRECIPITATION_SCALE = 2.5  # mm day-1 per unit of exp(latent) - 1

DRY_AIR_GAS_CONSTANT = 287.05  # J kg-1 K-1
LAPSE_RATE = 0.0065  # K m-1
STANDARD_SCALE_HEIGHT = 7900.0  # m
SEAWATER_FREEZING = 271.35  # K
NOISE_WIDTH_DEGREES = 6.0


def make_synthetic_dataset(years: int = 4, start: str = "2000-01-01", calendar: str = "standard",
                           freq: str = "D", nlat: int = 24, nlon: int = 36, seed: int = 0,
                           noise: float = 0.3, regimes: int = 4) -> xr.Dataset:
    """Synthetic climate fields with their ground-truth factors (see the module docstring).

    ``years`` calendar years of ``freq`` steps (``"D"`` daily, ``"MS"`` monthly, ...) from
    ``start`` in ``calendar``, on an ``nlat`` x ``nlon`` grid. The same ``seed`` gives the same
    dataset. Variables are ``(time, lat, lon)``, ``z`` is ``(time, level, lat, lon)``.
    """
    _check_arguments(years, calendar, nlat, nlon, seed, noise, regimes)
    time = _time_axis(years, start, calendar, freq)
    step_days = float(np.median(time_steps_in_days(time)))
    rng = np.random.default_rng(seed)
    lat = _cell_centers(*LAT_RANGE, nlat)
    lon = _cell_centers(*LON_RANGE, nlon)
    land = _land_mask(lat, lon)
    factors = _factors(rng, time, step_days, regimes)
    regime_names, regime_patterns = _regime_names_and_patterns(regimes, lat, lon)
    fields = _fields(rng, factors, regime_patterns, lat, lon, land, noise, step_days)
    return _dataset(time, lat, lon, land, factors, fields, regime_names, seed, noise)


#: Timesteps per stored NetCDF chunk, the reader's chunk along time.
TIME_CHUNK = 32


def write_synthetic_dataset(path: str | os.PathLike, **kwargs) -> Path:
    """Write ``make_synthetic_dataset(**kwargs)`` to the NetCDF file ``path`` atomically."""
    dataset = make_synthetic_dataset(**kwargs)
    for variable in dataset.data_vars.values():
        variable.encoding.update(zlib=True, complevel=1)
        if "time" in variable.dims:
            chunks = dict(variable.sizes, time=min(TIME_CHUNK, dataset.sizes["time"]))
            variable.encoding["chunksizes"] = tuple(chunks[dim] for dim in variable.dims)
    return write_netcdf(dataset, path)


def _check_arguments(years: int, calendar: str, nlat: int, nlon: int, seed: int, noise: float,
                     regimes: int) -> None:
    for name, value, smallest in (("years", years, 1), ("nlat", nlat, 4), ("nlon", nlon, 4),
                                  ("regimes", regimes, 2), ("seed", seed, 0)):
        if not is_integer(value) or value < smallest:
            raise InputError(f"`{name}` must be an integer >= {smallest}; received {value!r}.")
    if calendar not in CALENDARS:
        raise InputError(
            f"`calendar` must be one of {', '.join(CALENDARS)}; received {calendar!r}."
        )
    if not is_number(noise) or not math.isfinite(noise) or noise < 0:
        raise InputError(f"`noise` must be a finite number >= 0; received {noise!r}.")


def _time_axis(years: int, start: str, calendar: str, freq: str) -> xr.DataArray:
    """``years`` calendar years of ``freq`` stamps from ``start`` (end exclusive)."""
    try:
        end = pd.Timestamp(start) + pd.DateOffset(years=years)
        stamps = xr.date_range(start, end.strftime("%Y-%m-%d"), freq=freq, calendar=calendar,
                               use_cftime=calendar != "standard", inclusive="left")
    except (ValueError, TypeError, OverflowError) as error:
        raise InputError(f"Cannot build a time axis from start={start!r}, freq={freq!r} in the "
                         f"{calendar!r} calendar ({error}); expected a date like '2000-01-01' "
                         f"and a frequency like 'D' or 'MS'.") from None
    if stamps.size < 2:
        raise InputError(f"`freq`={freq!r} gives {stamps.size} step(s) in {years} year(s); "
                         f"expected at least 2.")
    attrs = {"standard_name": "time", "long_name": "time", "axis": "T"}
    return xr.DataArray(stamps, dims="time", name="time", attrs=attrs)


def _cell_centers(low: float, high: float, count: int) -> np.ndarray:
    """Centers of ``count`` equal cells between ``low`` and ``high``, ascending."""
    width = (high - low) / count
    return low + width * (np.arange(count) + 0.5)


def _blob(lat: np.ndarray, lon: np.ndarray, center: tuple[float, float],
          width: tuple[float, float]) -> np.ndarray:
    """Gaussian bump of height 1 at ``center`` (lat, lon) with widths (lat, lon) in degrees."""
    along_lat = np.exp(-0.5 * ((lat - center[0]) / width[0]) ** 2)
    along_lon = np.exp(-0.5 * ((lon - center[1]) / width[1]) ** 2)
    return np.outer(along_lat, along_lon)


def _land_mask(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """A continent east of a wavy coast near 5 W, and an island near 64 N, 40 W. Bool (lat, lon)."""
    coast = -5.0 + 8.0 * np.sin(np.deg2rad(lat - LAT_RANGE[0]) * 6.0)
    continent = lon[None, :] >= coast[:, None]
    island = _blob(lat, lon, ISLAND_CENTER, (2.5, 5.0)) > 0.5
    island[np.abs(lat - ISLAND_CENTER[0]).argmin(), np.abs(lon - ISLAND_CENTER[1]).argmin()] = True
    return continent | island


def _gaussian_kernel(coordinates: np.ndarray, width: float) -> np.ndarray:
    """Square Gaussian smoothing matrix over 1-D ``coordinates`` (unnormalized)."""
    return np.exp(-0.5 * ((coordinates[:, None] - coordinates[None, :]) / width) ** 2)


def _continentality(lat: np.ndarray, lon: np.ndarray, land: np.ndarray) -> np.ndarray:
    """Local land fraction within ~8 degrees, in [0, 1]: how far inland a cell is."""
    kernels = [_gaussian_kernel(axis, 8.0) for axis in (lat, lon)]
    kernels = [kernel / kernel.sum(axis=1, keepdims=True) for kernel in kernels]
    return kernels[0] @ land.astype("float64") @ kernels[1].T


def _ar1_coefficient(step_days: float, memory_days: float) -> float:
    return math.exp(-step_days / memory_days)


def _red_noise(rng: np.random.Generator, shape: tuple[int, ...], coefficient: float) -> np.ndarray:
    """Stationary unit-variance AR(1) noise along axis 0, float32."""
    innovations = rng.standard_normal(shape, dtype=np.float32)
    innovations[1:] *= np.float32(math.sqrt(1.0 - coefficient**2))
    return lfilter(np.float32([1.0]), np.float32([1.0, -coefficient]), innovations, axis=0)


def _smooth_noise(rng: np.random.Generator, steps: int, lat: np.ndarray, lon: np.ndarray,
                  coefficient: float) -> np.ndarray:
    """Unit-variance noise, smooth over ~6 degrees and AR(1) in time. ``(T, lat, lon)``."""
    lat_kernel, lon_kernel = [
        (kernel / np.linalg.norm(kernel, axis=1, keepdims=True)).astype("float32")
        for kernel in (_gaussian_kernel(axis, NOISE_WIDTH_DEGREES) for axis in (lat, lon))]
    white = np.moveaxis(_red_noise(rng, (steps, lat.size, lon.size), coefficient), 1, 0)
    along_lat = lat_kernel @ white.reshape(lat.size, -1)
    smooth = along_lat.reshape(-1, lon.size) @ lon_kernel.T
    return np.ascontiguousarray(np.moveaxis(smooth.reshape(lat.size, steps, lon.size), 0, 1))


def _standardize(series: np.ndarray) -> np.ndarray:
    return (series - series.mean()) / series.std()


def _factors(rng: np.random.Generator, time: xr.DataArray, step_days: float,
             regimes: int) -> dict[str, np.ndarray]:
    """The ground-truth factors, each ``(T,)``: floats, integers for the regime."""
    fraction = year_fraction(time).astype("float64")
    trend = time.dt.year.values - time.dt.year.values[0] + fraction - fraction[0]
    enso, teleconnection = _enso_and_teleconnection(rng, trend, step_days)
    return {
        "season": -np.cos(2.0 * np.pi * fraction),
        "enso": enso,
        "teleconnection": teleconnection,
        "regime": _regime_chain(rng, time.size, regimes, step_days),
        "trend": trend,
    }


def _enso_and_teleconnection(rng: np.random.Generator, elapsed_years: np.ndarray,
                             step_days: float) -> tuple[np.ndarray, np.ndarray]:
    """ENSO index and the teleconnection driven by its lagged, smoothed past. Both ``(T,)``.

    ENSO is an oscillation whose period wanders between 3 and 5 years (so every window of a
    few years holds a cycle), with a wandering amplitude, plus intraseasonal red noise.
    """
    smoothing = _ar1_coefficient(step_days, 30.0)
    lag = round(TELECONNECTION_LAG_DAYS / step_days)
    spin_up = lag + math.ceil(5 * 30.0 / step_days)
    before = elapsed_years[0] - step_days / 365.25 * np.arange(spin_up, 0, -1)
    years = np.concatenate([before, elapsed_years])
    period = 4.0 + np.clip(_red_noise(rng, years.shape, _ar1_coefficient(step_days, 730.0)), -1, 1)
    phase = rng.uniform(0.0, 2.0 * np.pi) + 2.0 * np.pi * np.cumsum(np.diff(years, prepend=years[0])
                                                                     / period)
    amplitude = 1.0 + 0.25 * _red_noise(rng, years.shape, _ar1_coefficient(step_days, 365.0))
    driver = (amplitude * np.sin(phase)
              + 0.4 * _red_noise(rng, years.shape, _ar1_coefficient(step_days, 60.0)))
    smoothed = lfilter([1.0 - smoothing], [1.0, -smoothing], driver)
    response = smoothed[spin_up - lag:smoothed.size - lag]
    own = _red_noise(rng, response.shape, _ar1_coefficient(step_days, 15.0))
    teleconnection = 0.75 * _standardize(response) + 0.65 * own
    return _standardize(driver[spin_up:]), _standardize(teleconnection)


def _regime_chain(rng: np.random.Generator, steps: int, regimes: int,
                  step_days: float) -> np.ndarray:
    """Markov chain staying with probability exp(-step / dwell), else moving to another regime."""
    leave = rng.random(steps) > _ar1_coefficient(step_days, REGIME_DWELL_DAYS)
    leave[0] = False
    jumps = rng.integers(1, regimes, size=steps) * leave
    return (rng.integers(regimes) + np.cumsum(jumps)) % regimes


def _regime_names_and_patterns(regimes: int, lat: np.ndarray,
                               lon: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Names and unit pressure dipoles ``(regimes, lat, lon)``; extra ones at spread places."""
    dipoles = list(REGIME_DIPOLES[:regimes])
    for index in range(len(dipoles), regimes):
        high = (35.0 + 30.0 * ((index * 0.381966) % 1.0), -70.0 + 100.0 * ((index * 0.618034) % 1.0))
        low = (high[0] + (12.0 if high[0] < 50.0 else -12.0), high[1] + 15.0)
        dipoles.append((f"regime_{index}", high, low))
    width = (8.0, 15.0)
    patterns = np.stack([_blob(lat, lon, high, width) - _blob(lat, lon, low, width)
                         for _, high, low in dipoles])
    return [name for name, _, _ in dipoles], patterns


def _fields(rng: np.random.Generator, factors: dict[str, np.ndarray], regime_patterns: np.ndarray,
            lat: np.ndarray, lon: np.ndarray, land: np.ndarray, noise: float,
            step_days: float) -> dict[str, np.ndarray]:
    """The physical variables from the factors: float32 ``(T, lat, lon)``, ``z`` with levels."""
    season, enso, teleconnection, trend = (factors[name].astype("float32")[:, None, None]
                                           for name in ("season", "enso", "teleconnection", "trend"))
    regime = regime_patterns.astype("float32")[factors["regime"]]
    dipole = (_blob(lat, lon, ENSO_POLES[0], (6.0, 12.0))
              - _blob(lat, lon, ENSO_POLES[1], (6.0, 12.0))).astype("float32")
    remote = _blob(lat, lon, TELECONNECTION_CENTER, (8.0, 16.0)).astype("float32")

    def smooth_noise(memory_days: float) -> np.ndarray:
        coefficient = _ar1_coefficient(step_days, memory_days)
        return np.float32(noise) * _smooth_noise(rng, season.size, lat, lon, coefficient)

    t2m = (_t2m_climatology(season, lat, lon, land) + np.float32(WARMING_PER_YEAR) * trend
           + T2M_SCALE * (dipole * enso + remote * teleconnection + 0.75 * regime * season
                          + smooth_noise(3.0)))
    msl_anomaly = MSL_SCALE * (1.5 * regime - 0.6 * dipole * enso - 1.2 * remote * teleconnection
                               + smooth_noise(2.0))
    msl = _msl_climatology(season, lat, lon) + msl_anomaly
    sst = (_sst_climatology(season, lat) + np.float32(0.6 * WARMING_PER_YEAR) * trend
           + 0.75 * T2M_SCALE * dipole * enso + SST_SCALE * smooth_noise(10.0))
    sst = np.where(land, np.float32(np.nan), np.maximum(sst, np.float32(SEAWATER_FREEZING)))
    latent = _wetness(lat) - msl_anomaly / np.float32(1000.0) + 2.0 * smooth_noise(1.0)
    return {
        "t2m": t2m,
        "msl": msl,
        "z": np.stack([_geopotential(msl, t2m, level) for level in LEVELS], axis=1),
        "tp": PRECIPITATION_SCALE * np.expm1(np.maximum(latent, np.float32(0.0))),
        "sst": sst,
    }


def _t2m_climatology(season: np.ndarray, lat: np.ndarray, lon: np.ndarray,
                     land: np.ndarray) -> np.ndarray:
    """Mean 300 K at 20 N to 270 K at 75 N; seasonal amplitude growing inland and northward."""
    continentality = _continentality(lat, lon, land)
    north = (lat - LAT_RANGE[0])[:, None]
    amplitude = 2.0 + 0.1 * north * (0.4 + 0.6 * continentality) + 5.0 * continentality
    mean = 300.5 - 0.55 * north
    return (mean + amplitude * season).astype("float32")


def _msl_climatology(season: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """An Azores high and an Icelandic low, 30% stronger in winter."""
    centers = (900.0 * _blob(lat, lon, (36.0, -30.0), (8.0, 20.0))
               - 1200.0 * _blob(lat, lon, (62.0, -30.0), (8.0, 25.0)))
    return (101325.0 + centers * (1.0 - 0.3 * season)).astype("float32")


def _sst_climatology(season: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """The t2m cycle damped: 301 K at 20 N cooling northward, amplitude 1 to 4.3 K."""
    north = (lat - LAT_RANGE[0])[:, None]
    mean = np.maximum(301.0 - 0.45 * north, SEAWATER_FREEZING)
    return (mean + (1.0 + 0.06 * north) * season).astype("float32")


def _wetness(lat: np.ndarray) -> np.ndarray:
    """Precipitation latent's base: dry subtropics, a wet storm track near 55 N. ``(lat, 1)``."""
    dry = np.exp(-(((lat - 25.0) / 8.0) ** 2))
    storm_track = np.exp(-(((lat - 55.0) / 8.0) ** 2))
    return (-0.3 - 0.5 * dry + 0.3 * storm_track)[:, None].astype("float32")


def _geopotential(msl: np.ndarray, t2m: np.ndarray, level: float) -> np.ndarray:
    """Hypsometric geopotential of the ``level`` hPa surface over mean sea level."""
    standard_height = STANDARD_SCALE_HEIGHT * math.log(1013.25 / level)
    layer_temperature = t2m - np.float32(0.5 * LAPSE_RATE * standard_height)
    return DRY_AIR_GAS_CONSTANT * layer_temperature * np.log(msl / np.float32(100.0 * level))


FACTOR_ATTRS = {
    "season": {"long_name": "seasonal cycle phase signal", "units": "1",
               "description": "-cos(2 pi phi), phi the fraction of the calendar year: -1 on "
                              "1 January, +1 in early July; scales the t2m, sst and msl cycles."},
    "enso": {"long_name": "ENSO-like index", "units": "1",
             "description": "Oscillation of period wandering between 3 and 5 years plus "
                            "intraseasonal red noise, zero mean, unit variance; a dipole in the "
                            "south-west: warm, low-pressure pole near 27N 65W, cold, "
                            "high-pressure pole near 41N 60W (t2m, sst, msl, tp)."},
    "teleconnection": {"long_name": "teleconnected remote response", "units": "1",
                       "description": "ENSO lagged by ~45 days and smoothed over ~30 days plus "
                                      "its own red noise, unit variance; drives t2m, msl and tp "
                                      "near 64N 30E in the north-east."},
    "regime": {"long_name": "weather regime", "units": "1",
               "description": "Markov chain of pressure-dipole regimes (msl, t2m, tp, z), "
                              "mean dwell about 8 days (one step for monthly data)."},
    "trend": {"long_name": "elapsed time since the first step", "units": "year",
              "description": "Linear trend: t2m warms by 0.05 K per year, sst by 0.03 K "
                             "per year."},
}

VARIABLE_ATTRS = {
    "t2m": {"standard_name": "air_temperature", "long_name": "2 metre temperature",
            "units": "K"},
    "msl": {"standard_name": "air_pressure_at_mean_sea_level",
            "long_name": "mean sea level pressure", "units": "Pa"},
    "z": {"standard_name": "geopotential", "long_name": "geopotential", "units": "m2 s-2"},
    "tp": {"standard_name": "lwe_precipitation_rate", "long_name": "total precipitation",
           "units": "mm day-1"},
    "sst": {"standard_name": "sea_surface_temperature", "long_name": "sea surface temperature",
            "units": "K"},
}


def _dataset(time: xr.DataArray, lat: np.ndarray, lon: np.ndarray, land: np.ndarray,
             factors: dict[str, np.ndarray], fields: dict[str, np.ndarray],
             regime_names: list[str], seed: int, noise: float) -> xr.Dataset:
    """Assemble the CF-described dataset."""
    coords = {
        "time": time,
        "level": ("level", np.array(LEVELS, dtype="int32"),
                  {"standard_name": "air_pressure", "long_name": "pressure level",
                   "units": "hPa", "axis": "Z", "positive": "down"}),
        "lat": ("lat", lat, {"standard_name": "latitude", "long_name": "latitude",
                             "units": "degrees_north", "axis": "Y"}),
        "lon": ("lon", lon, {"standard_name": "longitude", "long_name": "longitude",
                             "units": "degrees_east", "axis": "X"}),
    }
    data_vars = {name: (("time", "level", "lat", "lon") if name == "z" else ("time", "lat", "lon"),
                        values.astype("float32"), VARIABLE_ATTRS[name])
                 for name, values in fields.items()}
    data_vars["land_mask"] = (("lat", "lon"), land.astype("int8"),
                              {"standard_name": "land_binary_mask", "long_name": "land mask",
                               "units": "1", "flag_values": np.array([0, 1], "int8"),
                               "flag_meanings": "ocean land"})
    for name in FACTORS:
        attrs = dict(FACTOR_ATTRS[name])
        values = factors[name].astype("int32" if name == "regime" else "float32")
        if name == "regime":
            attrs.update(flag_values=np.arange(len(regime_names), dtype="int32"),
                         flag_meanings=" ".join(regime_names))
        data_vars[f"factor_{name}"] = ("time", values, attrs)
    attrs = {
        "title": "Synthetic North-Atlantic/European climate with known factors",
        "description": "Fields built from ground-truth factors stored as factor_<name>: "
                       + "; ".join(f"{name}: {FACTOR_ATTRS[name]['description']}"
                                   for name in FACTORS)
                       + f" Spatially smooth noise of {noise} times each variable's anomaly "
                         "scale; sst is NaN on land (land_mask = 1).",
        "Conventions": "CF-1.8",
        "source": "faconvlstm.data.synthetic.make_synthetic_dataset",
        "seed": int(seed),
        "noise": float(noise),
    }
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)
