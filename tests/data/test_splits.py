"""The validation split and the window at every time resolution: daily, monthly, seasonal
subsets and annual means, data too short for validation, and validation by calendar years."""

import warnings

import numpy as np
import pytest
import xarray as xr

from faconvlstm.data.calendar import contiguous_segments
from faconvlstm.data.splits import Split, WindowAdapted, hold_out, split_years
from faconvlstm.errors import InputError


def stamps(start: str, periods: int, freq: str, calendar: str = "standard",
           months: list[int] | None = None) -> xr.DataArray:
    time = xr.DataArray(
        xr.date_range(start, periods=periods, freq=freq, calendar=calendar, use_cftime=True),
        dims="time",
    )
    if months is not None:
        time = time.isel(time=np.isin(time.dt.month.values, months))
    return time.assign_coords(time=time)


def unchanged(time: xr.DataArray, window: int = 16, validation_years=None) -> Split:
    """The split, checking that the window was kept and nothing warned."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        split = hold_out(time, window, validation_years)
    assert (split.window, split.change) == (window, "")
    return split


def assert_default_rule(split: Split, time: xr.DataArray) -> None:
    """15 % held out or the least that gives two windows, at most 30 %, and whole gap-free
    runs of the validation part count at least two windows of the split's window."""
    held_out = split.steps - split.cut
    assert held_out <= 0.3 * split.steps
    runs = contiguous_segments(time.isel(time=split.validation))
    assert sum((run.stop - run.start) // split.window for run in runs) >= 2


def test_long_daily_data_hold_out_whole_calendar_years():
    time = stamps("2000-01-01", 3653, "D")  # ten years
    split = unchanged(time)
    assert_default_rule(split, time)
    first = time.values[split.cut]
    assert (first.month, first.day) == (1, 1)
    assert split.validation_period.startswith(f"{first.year}-01-01 .. 2009-12-31")


def test_short_daily_data_hold_out_15_percent_of_the_steps():
    time = stamps("2000-01-01", 730, "D", calendar="noleap")
    split = unchanged(time)
    assert split.steps - split.cut == round(0.15 * 730)


def test_monthly_data_of_a_few_years_get_a_shorter_window_and_say_why():
    time = stamps("2006-04-01", 54, "MS")  # as the OSTIA monthly sample: 4.5 years
    with pytest.warns(WindowAdapted, match=r"The window is 8 timesteps, not the 16 requested: "
                      r"two validation windows of more than 8 steps do not fit in the last 30 % "
                      r"of the 54 timesteps\. Pass a window of 8 or less \(--window 8\)"):
        split = hold_out(time, 16)
    assert (split.window, split.requested_window, split.cut) == (8, 16, 38)
    assert_default_rule(split, time)


def test_annual_means_keep_the_window():
    time = stamps("1860-06-01", 240, "YS-JUN", calendar="360_day")
    split = unchanged(time)
    assert split.cut == 204 and split.validation_period == "2064-06-01 .. 2099-06-01"
    with pytest.warns(WindowAdapted, match="window is 7 timesteps"):
        assert hold_out(time.isel(time=slice(0, 50)), 16).cut == 36  # 50 winter means


@pytest.mark.parametrize("freq, run_length", [("D", 90), ("MS", 3)])
def test_season_subsets_split_between_seasons(freq, run_length):
    """DJF of 40 years: the cut is a December; windows shrink only to fit a winter."""
    periods = 40 * 365 if freq == "D" else 40 * 12
    time = stamps("1980-01-01", periods, freq, calendar="noleap", months=[12, 1, 2])
    if run_length < 16:
        with pytest.warns(WindowAdapted, match="the longest gap-free run has 3 timesteps"):
            split = hold_out(time, 16)
    else:
        split = unchanged(time)
    assert_default_rule(split, time)
    first = time.values[split.cut]
    assert (first.month, first.day) == (12, 1)
    assert split.window == min(16, run_length)


def test_data_too_short_for_validation_say_what_is_needed():
    annual = stamps("2000-01-01", 5, "YS")
    with pytest.raises(InputError, match=r"The data have only 5 timesteps; at least 14 are "
                       r"needed .*; pass --validation-years 0 to train on all of them"):
        hold_out(annual, 16)
    winters = stamps("2006-04-01", 54, "MS", months=[12, 1, 2])  # four winters of 3 months
    with pytest.raises(InputError, match=r"12 timesteps in 4 gap-free runs \(of 3 steps "
                       r"typically\).*at least 7 such runs .* --validation-years 1"):
        hold_out(winters, 16)
    with pytest.raises(InputError, match="No window of 2 or more timesteps fits in the data: its "
                       r"longest gap-free run has 1 timestep"):
        hold_out(annual.isel(time=slice(0, 1)), 16)


def test_explicit_validation_years():
    monthly = stamps("2006-04-01", 54, "MS")
    with pytest.warns(WindowAdapted, match=r"the held-out part \(the last 1 validation "
                      r"year\(s\)\) has 9 timesteps"):
        split = hold_out(monthly, 16, validation_years=1)
    assert (split.cut, split.window) == (45, 9)
    assert unchanged(monthly, 8, validation_years=2).cut == 33
    assert unchanged(monthly, 8, validation_years=0).validation is None
    annual = stamps("1860-06-01", 240, "YS-JUN", calendar="360_day")
    with pytest.raises(InputError, match=r"The 1 held-out timestep\(s\) of the last 1 validation "
                       r"year\(s\) hold no window of 2 or more steps; hold out more years "
                       r"\(--validation-years 2\)"):
        hold_out(annual, 16, validation_years=1)
    with pytest.raises(InputError, match=r"Cannot hold out 5 validation year\(s\): the data span "
                       r"5 year\(s\) \(2006-2010\)"):
        hold_out(monthly, 16, validation_years=5)


def test_validation_years_keep_a_winter_whole():
    """The last year of DJF data is the winter of its January, December before it included."""
    winters = stamps("2006-04-01", 54, "MS", months=[12, 1, 2])
    training, validation = split_years(winters, 1)
    assert [stamp.month for stamp in validation.values] == [12, 1, 2]
    assert validation.values[0].year == 2009 and training.sizes["time"] == 9


def test_the_split_applies_to_the_fields_it_was_made_for():
    time = stamps("2000-01-01", 730, "D")
    fields = xr.DataArray(np.arange(730.0), coords={"time": time}, dims="time")
    split = Split.from_json(hold_out(time, 16).to_json())
    training, validation = split.parts(fields)
    assert training.sizes["time"] + validation.sizes["time"] == 730
    assert validation.values[0] == split.cut
    with pytest.raises(InputError, match="have 729 timesteps but the split was made for 730"):
        split.parts(fields.isel(time=slice(1, None)))
