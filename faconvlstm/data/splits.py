"""Splitting a series into training and validation years, and the grid's global extent."""

from __future__ import annotations

import numpy as np
import xarray as xr

from faconvlstm.errors import InputError


def covers_all_longitudes(lon: np.ndarray) -> bool:
    """Whether a regular longitude axis ``(lon,)`` closes the circle (a global grid)."""
    if lon.size < 2:
        return False
    spacing = float(np.median(np.diff(lon)))
    return abs(spacing * lon.size - 360.0) < spacing / 2


def split_years(fields: xr.DataArray, validation_years: int) -> tuple[xr.DataArray, xr.DataArray | None]:
    """``(training, validation)`` fields ``(time, ...)``: the last ``validation_years``
    calendar years held out; all of it trains (validation None) when that is 0."""
    years = np.unique(fields["time"].dt.year.values)
    if validation_years <= 0:
        return fields, None
    if validation_years >= years.size:
        raise InputError(
            f"Cannot hold out {validation_years} validation year(s): the data span "
            f"{years.size} year(s) ({years[0]}-{years[-1]}); use fewer or more data."
        )
    is_training = fields["time"].dt.year < years[-validation_years]
    return fields.isel(time=is_training.values), fields.isel(time=~is_training.values)
