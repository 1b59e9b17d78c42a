"""Perturbed copies of the canonical fields, for the robustness claim.

Each function takes fields ``(time, lat, lon, channel)`` (NaN invalid) and returns a perturbed
copy; the input is left unchanged and the same ``seed`` gives the same copy. The perturbations
are the everyday faults of observed data: noise, missing cells, missing days.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from faconvlstm import validation
from faconvlstm.data.preprocessing import area_weights, check_fields
from faconvlstm.errors import InputError


def _check_level(level: float) -> float:
    if not validation.is_number(level) or not np.isfinite(level) or level < 0:
        raise InputError(f"The noise level must be a finite number >= 0; got {level!r}.")
    return float(level)


def _check_fraction(fraction: float) -> float:
    if not validation.is_number(fraction) or not 0 <= fraction < 1:
        raise InputError(f"The fraction to drop must be a number in [0, 1); got {fraction!r}.")
    return float(fraction)


def channel_std(fields: xr.DataArray) -> xr.DataArray:
    """Per channel area-weighted (cos latitude) standard deviation over valid cells.
    ``(channel,)``."""
    weights = xr.DataArray(area_weights(fields["lat"].values), dims="lat")
    return fields.astype("float64").weighted(weights).std(("time", "lat", "lon")).compute()


def add_noise(fields: xr.DataArray, level: float, seed: int = 0) -> xr.DataArray:
    """``fields`` plus Gaussian noise of standard deviation ``level`` x the channel's std.

    The channel's std is area-weighted (see :func:`channel_std`), so ``level=0.1`` adds noise at
    a tenth of the channel's variability. NaN cells stay NaN.
    """
    check_fields(fields)
    level = _check_level(level)
    noise = np.random.default_rng(seed).standard_normal(fields.shape)
    scale = level * channel_std(fields).values
    return fields + (noise * scale).astype(fields.dtype)


def drop_cells(fields: xr.DataArray, fraction: float, seed: int = 0) -> xr.DataArray:
    """``fields`` with a random ``fraction`` of the valid ``(time, lat, lon)`` cells set to NaN.

    A cell is valid when any channel holds a value there; a dropped cell is NaN in all channels.
    The number dropped is ``round(fraction x valid cells)``, chosen without replacement.
    """
    check_fields(fields)
    fraction = _check_fraction(fraction)
    valid = np.flatnonzero(fields.notnull().any("channel").values)
    dropped = np.random.default_rng(seed).choice(
        valid, size=round(fraction * valid.size), replace=False
    )
    keep = np.ones(fields.shape[:3], dtype=bool)
    keep.flat[dropped] = False
    return fields.where(xr.DataArray(keep, dims=("time", "lat", "lon")))


def drop_timesteps(fields: xr.DataArray, fraction: float, seed: int = 0) -> xr.DataArray:
    """``fields`` with a random ``fraction`` of its timesteps (``round(fraction x time)``)
    missing: every cell of those frames set to NaN.

    The time axis is kept, as in a file whose missing days are stored as fill values, so the
    model still sees contiguous windows; the first and last timesteps are never dropped.
    """
    check_fields(fields)
    fraction = _check_fraction(fraction)
    steps = fields.sizes["time"]
    count = round(fraction * steps)
    if count > max(steps - 2, 0):
        raise InputError(
            f"Cannot drop {count} of {steps} timesteps and keep the first and last; use a "
            f"smaller fraction."
        )
    dropped = np.random.default_rng(seed).choice(np.arange(1, steps - 1), size=count, replace=False)
    kept = xr.DataArray(~np.isin(np.arange(steps), dropped), dims="time")
    return fields.where(kept)
