"""Files as they come: several files brought onto one grid and one set of monthly stamps.

Files of one analysis often disagree in small ways that say nothing about the data: one file
covers a larger region than the other (a global SST file beside a tropical wind file), or one
stamps each month at its middle and the other at its end. :func:`cut_to_shared_grid` cuts
every file to the region all of them cover, when their grids coincide there;
:func:`align_monthly_stamps` stamps every month of monthly files at its middle, when their
stamps differ. Each change is announced with a :class:`DataAligned` warning; grids that do
not coincide (another spacing, shifted cells) or regions that do not overlap are refused
with an error that names what each file holds.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from faconvlstm.data.calendar import time_steps_in_days
from faconvlstm.errors import InputError

#: Coordinates closer than this (degrees) are the same grid line.
COORDINATE_TOLERANCE = 1e-6
#: A time axis whose median step lies in this range of days is monthly.
MONTHLY_STEP_DAYS = (27.0, 32.0)


class DataAligned(UserWarning):
    """Files were cut to their shared region or their monthly stamps aligned; the message
    says how."""


def _wrapped(lon: np.ndarray) -> np.ndarray:
    return np.mod(np.asarray(lon, dtype="float64") + 180.0, 360.0) - 180.0


def _in(values: np.ndarray, reference: np.ndarray, circular: bool) -> np.ndarray:
    """Whether each of ``values`` equals one of ``reference`` (longitudes modulo 360)."""
    difference = np.abs(values[:, None] - reference[None, :])
    if circular:
        difference = np.minimum(difference, 360.0 - difference)
    return (difference <= COORDINATE_TOLERANCE).any(axis=1) if reference.size else np.zeros(
        values.shape, bool
    )


def _shared_span(shared: np.ndarray, circular: bool) -> tuple[float, float]:
    """``(start, width)`` of the shortest interval (arc, for longitudes) holding ``shared``."""
    ordered = np.sort(shared)
    if not circular:
        return float(ordered[0]), float(ordered[-1] - ordered[0])
    gaps = np.diff(np.concatenate([ordered, [ordered[0] + 360.0]]))
    widest = int(np.argmax(gaps))
    start = ordered[(widest + 1) % ordered.size]
    return float(start), float(360.0 - gaps[widest])


def _inside(values: np.ndarray, span: tuple[float, float], circular: bool) -> np.ndarray:
    start, width = span
    offset = values - start
    if circular:
        offset = np.mod(offset + COORDINATE_TOLERANCE, 360.0) - COORDINATE_TOLERANCE
    return (offset >= -COORDINATE_TOLERANCE) & (offset <= width + COORDINATE_TOLERANCE)


def _extent(values: np.ndarray) -> str:
    return f"{values.min():g}..{values.max():g}"


def _shared_points(
    axis: str, paths: list[str], coordinates: list[np.ndarray]
) -> list[np.ndarray]:
    """For each file, the bool mask of its ``axis`` points that every file has.

    Refused with an ``InputError``: no shared point, or a file with points inside the shared
    extent that another file lacks (another spacing or shifted cells: regridding needed).
    """
    circular = axis == "lon"
    values = [_wrapped(c) if circular else np.asarray(c, "float64") for c in coordinates]
    shared = values[0]
    for other in values[1:]:
        shared = shared[_in(shared, other, circular)]
    listed = "; ".join(f"{Path(p).name}: {axis} {_extent(v)}" for p, v in zip(paths, values))
    if not shared.size:
        raise InputError(
            f"The files share no {axis} grid line ({listed}); expected files that overlap "
            "(select a common region, or regrid them onto one grid)."
        )
    span = _shared_span(shared, circular)
    masks = [_in(v, shared, circular) for v in values]
    for path, value, mask in zip(paths, values, masks):
        extra = _inside(value, span, circular) & ~mask
        if extra.any():
            raise InputError(
                f"'{Path(path).name}' has {axis} grid lines ({', '.join(f'{x:g}' for x in value[extra][:3])}"
                f"...) that the other files lack inside the region they share ({listed}); "
                "expected grids that coincide where they overlap (regrid them onto one grid)."
            )
    return masks


def cut_to_shared_grid(
    paths: list[str], datasets: list[xr.Dataset], axes: list[tuple[str, str]]
) -> list[xr.Dataset]:
    """Each dataset cut to the lat/lon region every file covers; unchanged when they agree.

    ``axes[i]`` names dataset ``i``'s ``(lat, lon)`` dimensions. The files' grid lines must
    coincide inside the shared region. Warns :class:`DataAligned` naming the region kept.
    """
    masks = {
        axis: _shared_points(axis, paths, [ds[names[i]].values for ds, names in zip(datasets, axes)])
        for i, axis in enumerate(("lat", "lon"))
    }
    if all(mask.all() for per_file in masks.values() for mask in per_file):
        return datasets
    cut = [
        ds.isel({names[0]: masks["lat"][i], names[1]: masks["lon"][i]})
        for i, (ds, names) in enumerate(zip(datasets, axes))
    ]
    lat, lon = cut[0][axes[0][0]].values, _wrapped(cut[0][axes[0][1]].values)
    west, width = _shared_span(lon, circular=True)
    warnings.warn(
        DataAligned(
            f"The files cover different regions; all are cut to the region they share: "
            f"latitudes {_extent(lat)}, longitudes {west:g}..{west + width:g} ({lat.size} x "
            f"{lon.size} cells)."
        ),
        stacklevel=3,
    )
    return cut


def is_one_per_month(time: xr.DataArray) -> bool:
    """Whether a time axis has one stamp per month (any day of the month), months in order."""
    if time.size < 2:
        return False
    months = time.dt.year.values * 12 + time.dt.month.values
    low, high = MONTHLY_STEP_DAYS
    return bool(
        np.all(np.diff(months) >= 1) and low <= np.median(time_steps_in_days(time)) <= high
    )


def mid_month(time: xr.DataArray) -> xr.DataArray:
    """The middle of each stamp's month, in the stamp's calendar (15 or 16 days and 12 hours
    after the first of the month, as months go)."""
    values = time.values
    if np.issubdtype(time.dtype, np.datetime64):
        month = values.astype("datetime64[M]")
        start, following = month.astype(time.dtype), (month + 1).astype(time.dtype)
        middle = start + (following - start) // 2
    else:
        starts = [stamp.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
                  for stamp in values]
        following = [
            start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
            for start in starts
        ]
        middle = np.array([a + (b - a) / 2 for a, b in zip(starts, following)], dtype=object)
    return time.copy(data=middle)


def align_monthly_stamps(
    paths: list[str], datasets: list[xr.Dataset], time_axes: list[str]
) -> list[xr.Dataset]:
    """Monthly files whose stamps differ (mid-month against month-end) restamped at
    mid-month, so the same month meets itself; unchanged when the stamps agree or a file is
    not monthly. Warns :class:`DataAligned` when it restamps."""
    times = [ds[axis] for ds, axis in zip(datasets, time_axes)]
    if not all(is_one_per_month(time) for time in times):
        return datasets
    stamps = [set(time.values.tolist()) for time in times]
    if all(s == stamps[0] for s in stamps[1:]):
        return datasets
    aligned = [
        ds.assign_coords({axis: mid_month(ds[axis])}) for ds, axis in zip(datasets, time_axes)
    ]
    days = {Path(p).name: sorted({int(d) for d in t.dt.day.values}) for p, t in zip(paths, times)}
    described = "; ".join(f"{name}: days {', '.join(map(str, d[:4]))}" for name, d in days.items())
    warnings.warn(
        DataAligned(
            f"The monthly files stamp their months on different days ({described}); every "
            "month is stamped at its middle so the files meet month by month."
        ),
        stacklevel=3,
    )
    return aligned
