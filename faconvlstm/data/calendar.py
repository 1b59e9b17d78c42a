"""The time axis: checks, the fraction of the calendar year, seasonal harmonics, and gaps.

Works on any calendar xarray decodes (numpy ``datetime64`` for the standard calendar,
cftime objects for ``noleap``, ``360_day``, ``all_leap``, ...), so the seasonal position of a
day is the one of the data's own calendar.
"""

from __future__ import annotations

import itertools

import cftime
import numpy as np
import xarray as xr

from faconvlstm.errors import InputError
from faconvlstm.validation import non_negative_int

SECONDS_PER_DAY = 86400.0


def is_dates(coordinate: xr.DataArray) -> bool:
    """Whether ``coordinate`` holds decoded dates (numpy ``datetime64`` or cftime objects)."""
    if np.issubdtype(coordinate.dtype, np.datetime64):
        return True
    values = coordinate.values
    return (
        values.dtype == object and values.size > 0 and isinstance(values.flat[0], cftime.datetime)
    )


def check_dates(time: xr.DataArray) -> None:
    """Raise ``InputError`` unless ``time`` holds decoded dates."""
    if time.size and not is_dates(time):
        raise InputError(
            f"The time coordinate holds {time.dtype} values, not dates (units: "
            f"{time.attrs.get('units', 'none')}); expected CF time units like "
            "'days since 2000-01-01' (give them with --time-units)."
        )


def check_time_axis(time: xr.DataArray) -> None:
    """Raise ``InputError`` unless ``time`` is strictly increasing with no duplicate stamps."""
    if time.size == 0:
        raise InputError("The time axis is empty; expected at least one timestep.")
    values = time.values
    later = values[1:]
    earlier = values[:-1]
    duplicated = np.flatnonzero(later == earlier)
    if duplicated.size:
        stamp = values[duplicated[0] + 1]
        raise InputError(
            f"The time axis has duplicated stamps (first: {stamp}); expected unique times."
        )
    backwards = np.flatnonzero(~(later > earlier))
    if backwards.size:
        index = backwards[0] + 1
        raise InputError(
            f"The time axis is not increasing: {values[index]} (position {index}) comes after "
            f"{values[index - 1]}; expected times sorted ascending."
        )


def is_monthly(time: xr.DataArray) -> bool:
    """Whether the stamps are one per month (month-start or month-end frequency)."""
    if time.size < 3:
        return False
    frequency = xr.infer_freq(time)
    return frequency is not None and frequency.lstrip("0123456789").startswith(("M", "ME", "MS"))


def year_fraction(time: xr.DataArray) -> np.ndarray:
    """Fraction of the calendar year in ``[0, 1)`` of every stamp, for the data's own calendar.

    Daily and sub-daily stamps count the elapsed days since 1 January, time of day included,
    divided by the year's length (365 or 366 days, 365 for ``noleap``, 360 for ``360_day``).
    Monthly stamps (at the start or the end of each month) are moved to mid-month. ``(T,)``.
    """
    check_dates(time)
    dt = time.dt
    days_in_year = dt.days_in_year.values.astype("float64")
    if is_monthly(time):
        month_days = dt.days_in_month.values.astype("float64")
        first_day = dt.dayofyear.values - dt.day.values
        elapsed = first_day + month_days / 2.0
    else:
        seconds = dt.hour.values * 3600.0 + dt.minute.values * 60.0 + dt.second.values
        elapsed = dt.dayofyear.values - 1.0 + seconds / SECONDS_PER_DAY
    return np.mod(elapsed / days_in_year, 1.0).astype("float32")


def decimal_year(time: xr.DataArray) -> np.ndarray:
    """Calendar year plus :func:`year_fraction`, in the data's own calendar. ``(T,)`` float64."""
    fraction = year_fraction(time).astype("float64")
    return time.dt.year.values.astype("float64") + fraction


def seasonal_harmonics(fraction: np.ndarray, harmonics: int) -> np.ndarray:
    """Columns ``cos(2 pi k phi)``, k = 1..K, then ``sin(2 pi k phi)``, k = 1..K, of the year
    fractions ``phi`` ``(T,)``. ``(T, 2K)`` float64."""
    harmonics = non_negative_int(harmonics, "harmonics")
    angle = 2.0 * np.pi * np.asarray(fraction, dtype="float64")[:, None]
    orders = np.arange(1, harmonics + 1)
    return np.concatenate([np.cos(orders * angle), np.sin(orders * angle)], axis=1)


def time_steps_in_days(time: xr.DataArray) -> np.ndarray:
    """Differences between consecutive stamps in days (any calendar). ``(T - 1,)``."""
    steps = [later - earlier for earlier, later in itertools.pairwise(time.values)]
    seconds = np.array([np.timedelta64(step, "s").astype("float64") for step in steps])
    return seconds / SECONDS_PER_DAY


def contiguous_segments(time: xr.DataArray, tolerance: float = 1.5) -> list[slice]:
    """Runs of the time axis without gaps, as index slices covering every timestep once.

    A gap is a step longer than ``tolerance`` times the median step (monthly data's 28-31
    day steps are no gap; a season subset's jump to the next year is).
    """
    if time.size < 2:
        return [slice(0, int(time.size))]
    steps = time_steps_in_days(time)
    breaks = np.flatnonzero(steps > tolerance * np.median(steps)) + 1
    edges = [0, *breaks.tolist(), int(time.size)]
    return [slice(start, stop) for start, stop in itertools.pairwise(edges)]


#: Leads (in days) at which forecast skill is measured, by the data's time step: monthly
#: data at 1, 3, 6, 9 months, yearly data (annual or seasonal means) at 1, 2, 3 years, the
#: rest (daily, sub-daily, pentads) at 1, 3, 7, 14 days (at least one step each).
MONTHLY_LEADS = (1, 3, 6, 9)
YEARLY_LEADS = (1, 2, 3)
DAILY_LEAD_DAYS = (1, 3, 7, 14)


def lead_steps(time: xr.DataArray) -> tuple[int, ...]:
    """The leads, in steps of ``time``, at which skill is measured for data of its time step
    (the median step of its gap-free runs): see :data:`MONTHLY_LEADS`."""
    steps = time_steps_in_days(time)
    inside = steps[steps <= 1.5 * np.median(steps)] if steps.size else steps
    step = float(np.median(inside)) if inside.size else 1.0
    if step >= 300.0:
        return YEARLY_LEADS
    if step >= 27.0:
        return MONTHLY_LEADS
    return tuple(sorted({max(1, round(days / step)) for days in DAILY_LEAD_DAYS}))
