"""Holding out the validation timesteps, the window that fits the data, and the grid's extent.

:func:`hold_out` decides, from the time axis alone, which timesteps train and which validate
and which window length to use. By default it holds out the last ~15 % of the timesteps (at
least two windows, whole calendar years where the data span enough of them) and never cuts a
gap-free run shorter than a year, so a season subset splits between seasons. A window too
long for the data is shortened (never below :data:`MIN_WINDOW`) with a
:class:`WindowAdapted` warning. ``validation_years=N`` holds out the last N calendar years
instead (:func:`split_years`), 0 none.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import xarray as xr

from faconvlstm.data.calendar import contiguous_segments, time_steps_in_days
from faconvlstm.errors import InputError
from faconvlstm.validation import non_negative_int, positive_int

#: The share of the timesteps held out by default, and the most that may be.
VALIDATION_SHARE = 0.15
MAX_VALIDATION_SHARE = 0.30
#: Validation windows (end to end, inside gap-free runs) the default split holds out at least.
VALIDATION_WINDOWS = 2
#: The shortest window the data may shrink the window to.
MIN_WINDOW = 2
#: Days from which a gap-free run counts as a year long (360: any calendar's year).
YEAR_DAYS = 360.0


class WindowAdapted(UserWarning):
    """The window was shortened to fit the data; the message says why."""


@dataclasses.dataclass(frozen=True)
class Split:
    """A time axis of ``steps`` timesteps: training ``[0, cut)``, validation ``[cut, steps)``.

    ``cut == steps`` means no validation. ``window`` is the window to train with,
    ``requested_window`` the one asked for and ``change`` why they differ ("" when they do
    not); ``validation_period`` names the first and last held-out stamps.
    """

    steps: int
    cut: int
    window: int
    requested_window: int
    change: str = ""
    validation_period: str = ""

    @property
    def training(self) -> slice:
        return slice(0, self.cut)

    @property
    def validation(self) -> slice | None:
        return slice(self.cut, self.steps) if self.cut < self.steps else None

    def parts(self, fields: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray | None]:
        """``(training, validation)`` fields ``(time, ...)``; validation None when empty."""
        if fields.sizes["time"] != self.steps:
            raise InputError(
                f"The fields have {fields.sizes['time']} timesteps but the split was made for "
                f"{self.steps}; split the data the run was trained on."
            )
        validation = None if self.validation is None else fields.isel(time=self.validation)
        return fields.isel(time=self.training), validation

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, values: dict) -> Split:
        return cls(**values)


def covers_all_longitudes(lon: np.ndarray) -> bool:
    """Whether a regular longitude axis ``(lon,)`` closes the circle (a global grid)."""
    if lon.size < 2:
        return False
    spacing = float(np.median(np.diff(lon)))
    return abs(spacing * lon.size - 360.0) < spacing / 2


def split_years(
    fields: xr.DataArray, validation_years: int
) -> tuple[xr.DataArray, xr.DataArray | None]:
    """``(training, validation)`` fields ``(time, ...)``: the last ``validation_years``
    calendar years held out; all of it trains (validation None) when that is 0.

    A season that runs across the new year (a DJF winter) goes whole with the year of its
    January: the cut moves back to the start of a gap-free run shorter than a year.
    """
    validation_years = non_negative_int(validation_years, "validation_years")
    if validation_years == 0:
        return fields, None
    time = fields["time"]
    years = np.unique(time.dt.year.values)
    cut = 0
    if validation_years < years.size:
        cut = int(np.searchsorted(time.dt.year.values, years[-validation_years]))
        runs = _Runs(time)
        run = runs.containing(cut)
        if runs.spans[run] < YEAR_DAYS:
            cut = int(runs.starts[run])
    if cut == 0:
        raise InputError(
            f"Cannot hold out {validation_years} validation year(s): the data span "
            f"{years.size} year(s) ({years[0]}-{years[-1]}); hold out fewer, or leave "
            "--validation-years out to hold out the last 15 % of the timesteps."
        )
    return fields.isel(time=slice(0, cut)), fields.isel(time=slice(cut, None))


def hold_out(time: xr.DataArray, window: int, validation_years: int | None = None) -> Split:
    """Which timesteps of ``time`` ``(T,)`` train and which validate, and the window to use.

    ``validation_years=None``: the last ~15 % of the timesteps, at least two windows and
    at most 30 % (the rest trains), cut at the start of a calendar year when 15 % of the span
    is a year or more; a cut never falls inside a gap-free run shorter than a year (unless the
    data are one run). ``validation_years=N``: the last N calendar years
    (:func:`split_years`); 0: no validation. The window shrinks to the largest one (at least
    :data:`MIN_WINDOW`) for which the split has its windows, with a :class:`WindowAdapted`
    warning; data too short even for that raise ``InputError``.
    """
    window = positive_int(window, "window")
    runs = _Runs(time)
    if validation_years is None:
        cut, chosen, reasons = _automatic(runs, window)
    else:
        cut, chosen, reasons = _by_years(time, runs, window, validation_years)
    change = ""
    if chosen != window:
        change = " and ".join(reasons)
        warnings.warn(
            f"The window is {chosen} timesteps, not the {window} requested: {change}. Pass a "
            f"window of {chosen} or less (--window {chosen}) to choose it yourself.",
            WindowAdapted,
            stacklevel=2,
        )
    period = ""
    if cut < runs.steps:
        period = f"{_stamp(time.values[cut])} .. {_stamp(time.values[-1])}"
    return Split(runs.steps, cut, chosen, window, change, period)


def _stamp(value) -> str:
    """A time stamp as text, without a zero time of day: ``2009-06-16``, ``2001-01-01 06:00``."""
    text = str(value).replace("T", " ").split(".")[0]
    return text.removesuffix(" 00:00:00").removesuffix(":00")


class _Runs:
    """The gap-free runs of a time axis: ``starts``, ``stops`` and ``spans`` (in days)."""

    def __init__(self, time: xr.DataArray):
        segments = contiguous_segments(time)
        self.steps = int(time.size)
        self.years = time.dt.year.values
        self.starts = np.array([segment.start for segment in segments])
        self.stops = np.array([segment.stop for segment in segments])
        days = time_steps_in_days(time)
        step = float(np.median(days)) if days.size else 0.0
        elapsed = np.concatenate([[0.0], np.cumsum(days)])
        self.spans = elapsed[self.stops - 1] - elapsed[self.starts] + step
        self.total_span = float(elapsed[-1] + step)

    @property
    def longest(self) -> int:
        return int((self.stops - self.starts).max())

    def containing(self, steps: np.ndarray | int) -> np.ndarray | int:
        """The run of each timestep index."""
        return np.searchsorted(self.starts, steps, side="right") - 1

    def longest_in(self, start: int, stop: int) -> int:
        """The longest gap-free stretch of the timesteps ``[start, stop)``."""
        lengths = np.minimum(self.stops, stop) - np.maximum(self.starts, start)
        return int(max(lengths.max(), 0))

    def cuts(self) -> np.ndarray:
        """Where validation may start: every run's start but the first, and every step
        inside a run a year long or more (inside the only run, when there is one)."""
        cuts = [self.starts[1:]]
        for start, stop, span in zip(self.starts, self.stops, self.spans):
            if span >= YEAR_DAYS or self.starts.size == 1:
                cuts.append(np.arange(start + 1, stop))
        return np.unique(np.concatenate(cuts)).astype(int)

    def windows(self, cuts: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
        """For validation starting at each of ``cuts``: the training window starts (stride 1)
        before it, and the validation windows, end to end inside runs, after it."""
        run = self.containing(cuts)
        lengths = self.stops - self.starts
        fits = np.maximum(lengths - window + 1, 0)
        before = np.concatenate([[0], np.cumsum(fits)[:-1]])
        training = before[run] + np.maximum(cuts - self.starts[run] - window + 1, 0)
        whole = lengths // window
        after = np.concatenate([np.cumsum(whole[::-1])[::-1][1:], [0]])
        validation = (self.stops[run] - cuts) // window + after[run]
        return training, validation


def _automatic(runs: _Runs, window: int) -> tuple[int, int, list[str]]:
    """The default split: ``(cut, window, reasons the window is shorter than requested)``."""
    cuts = runs.cuts()
    year_cuts = None
    if runs.total_span * VALIDATION_SHARE >= YEAR_DAYS:
        year_cuts = _year_starts(runs, cuts)
    longest = runs.longest
    for chosen in range(min(window, longest), MIN_WINDOW - 1, -1):
        cut = _best_cut(runs, cuts, year_cuts, chosen)
        if cut is not None:
            reasons = []
            if window > longest:
                reasons.append(f"the longest gap-free run has {longest} timesteps")
            if chosen < min(window, longest):
                reasons.append(
                    f"two validation windows of more than {chosen} steps do not fit in the "
                    f"last 30 % of the {runs.steps} timesteps"
                )
            return cut, chosen, reasons
    raise InputError(_too_short(runs))


def _year_starts(runs: _Runs, cuts: np.ndarray) -> np.ndarray:
    """The ``cuts`` that start a calendar year (or a run: a season subset's next season)."""
    years = runs.years
    return cuts[(years[cuts] != years[cuts - 1]) | np.isin(cuts, runs.starts)]


def _best_cut(runs: _Runs, cuts: np.ndarray, year_cuts: np.ndarray | None,
              window: int) -> int | None:
    """The cut nearest to holding out 15 % of the timesteps that leaves training windows and
    two validation windows in at most 30 %, at a year's start when ``year_cuts`` allow."""
    for candidates in ([] if year_cuts is None else [year_cuts]) + [cuts]:
        training, validation = runs.windows(candidates, window)
        held_out = runs.steps - candidates
        feasible = (
            (training >= 1) & (validation >= VALIDATION_WINDOWS)
            & (held_out <= MAX_VALIDATION_SHARE * runs.steps)
        )
        if feasible.any():
            distance = np.abs(held_out[feasible] - VALIDATION_SHARE * runs.steps)
            return int(candidates[feasible][np.argmin(distance)])
    return None


def _too_short(runs: _Runs) -> str:
    """Why no window of :data:`MIN_WINDOW` steps gives the default split, and the fix."""
    fix = "pass --validation-years 0 to train on all of them, or use more data."
    if runs.starts.size > 1:
        fix = ("pass --validation-years 1 to hold out the last year only, --validation-years 0 "
               "to train on all of them, or use more data.")
    if runs.longest < MIN_WINDOW:
        return (
            f"No window of {MIN_WINDOW} or more timesteps fits in the data: its longest "
            f"gap-free run has {runs.longest} timestep(s); use more data."
        )
    if runs.starts.size == 1:
        needed = math.ceil(VALIDATION_WINDOWS * MIN_WINDOW / MAX_VALIDATION_SHARE)
        return (
            f"The data have only {runs.steps} timesteps; at least {needed} are needed to "
            f"train with validation (two validation windows of {MIN_WINDOW} steps in the last "
            f"30 %); {fix}"
        )
    typical = int(np.median(runs.stops - runs.starts))
    held_runs = math.ceil(VALIDATION_WINDOWS / max(typical // MIN_WINDOW, 1))
    needed = math.ceil(held_runs / MAX_VALIDATION_SHARE - 1e-9)
    return (
        f"The data have only {runs.steps} timesteps in {runs.starts.size} gap-free runs (of "
        f"{typical} steps typically); two validation windows of {MIN_WINDOW} steps take "
        f"{held_runs} run(s), more than the last 30 %: at least {needed} such runs are "
        f"needed to train with validation; {fix}"
    )


def _by_years(time: xr.DataArray, runs: _Runs, window: int,
              validation_years: int) -> tuple[int, int, list[str]]:
    """The last ``validation_years`` calendar years held out: ``(cut, window, reasons)``."""
    training, validation = split_years(time, validation_years)
    cut = training.sizes["time"]
    longest_training = runs.longest_in(0, cut)
    chosen, reasons = min(window, longest_training), []
    part = "the training part" if validation is not None else "the data"
    if window > longest_training:
        reasons.append(f"the longest gap-free run of {part} has {longest_training} timesteps")
    if chosen < MIN_WINDOW:
        raise InputError(
            f"No window of {MIN_WINDOW} or more timesteps fits in {part}: its longest "
            f"gap-free run has {longest_training} timestep(s); use more data."
        )
    if validation is None:
        return cut, chosen, reasons
    held_out = runs.longest_in(cut, runs.steps)
    years = f"the last {validation_years} validation year(s)"
    if held_out < MIN_WINDOW:
        raise InputError(
            f"The {runs.steps - cut} held-out timestep(s) of {years} hold no window of "
            f"{MIN_WINDOW} or more steps; hold out more years (--validation-years "
            f"{validation_years + 1}), or leave --validation-years out to hold out the last "
            "15 % of the timesteps."
        )
    if held_out < chosen:
        chosen = held_out
        reasons.append(f"the held-out part ({years}) has {held_out} timesteps in a row")
    return cut, chosen, reasons
