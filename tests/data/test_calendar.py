"""The time axis: year fraction per calendar, monthly stamps, checks and gaps."""

import numpy as np
import pytest
import xarray as xr

from faconvlstm.data.calendar import (
    check_time_axis,
    contiguous_segments,
    decimal_year,
    seasonal_harmonics,
    year_fraction,
)
from faconvlstm.errors import InputError


def dates(start: str, periods: int, calendar: str = "standard", freq: str = "D") -> xr.DataArray:
    values = xr.date_range(
        start, periods=periods, freq=freq, calendar=calendar, use_cftime=calendar != "standard"
    )
    return xr.DataArray(values, dims="time")


@pytest.mark.parametrize(
    "calendar, start, expected",
    [
        ("standard", "2000-02-29", 59 / 366),  # leap day
        ("standard", "2001-03-01", 59 / 365),
        ("noleap", "2000-03-01", 59 / 365),  # no 29 February in noleap, even in 2000
        ("360_day", "2000-03-01", 60 / 360),  # every month has 30 days
        ("360_day", "2000-12-30", 359 / 360),
    ],
)
def test_year_fraction_of_known_dates(calendar, start, expected):
    assert year_fraction(dates(start, 1, calendar))[0] == pytest.approx(expected, abs=1e-7)


def test_decimal_year_is_the_year_plus_its_fraction():
    time = dates("2000-12-30", 3, "360_day")
    np.testing.assert_allclose(decimal_year(time), [2000 + 359 / 360, 2001.0, 2001 + 1 / 360])
    assert decimal_year(time).dtype == np.float64
    with pytest.raises(InputError, match="holds int64 values, not dates"):
        decimal_year(xr.DataArray(np.arange(3), dims="time"))


def test_seasonal_harmonics_are_the_cosines_then_the_sines():
    phi = np.array([0.0, 0.125, 0.25])
    expected = np.stack(
        [np.cos(2 * np.pi * phi), np.cos(4 * np.pi * phi),
         np.sin(2 * np.pi * phi), np.sin(4 * np.pi * phi)], axis=1,
    )
    np.testing.assert_allclose(seasonal_harmonics(phi, 2), expected, atol=1e-12)
    assert seasonal_harmonics(phi, 0).shape == (3, 0)
    with pytest.raises(InputError, match="`harmonics` must be a non-negative integer"):
        seasonal_harmonics(phi, -1)


def test_time_of_day_counts():
    six_hourly = dates("2001-01-01", 4, freq="6h")
    np.testing.assert_allclose(year_fraction(six_hourly), np.arange(4) * 0.25 / 365, atol=1e-7)


@pytest.mark.parametrize("calendar, days", [("standard", 366), ("noleap", 365), ("360_day", 360)])
def test_no_jump_at_the_year_boundary(calendar, days):
    fraction = year_fraction(dates("2000-12-29", 6, calendar))
    step = np.diff(np.unwrap(2 * np.pi * fraction)) / (2 * np.pi)
    np.testing.assert_allclose(step, 1 / days, rtol=0.01)


@pytest.mark.parametrize("freq", ["MS", "ME"])
def test_monthly_stamps_sit_mid_month(freq):
    fraction = year_fraction(dates("2001-01-01", 12, freq=freq))
    month_days = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    mid_month = (np.cumsum(month_days) - month_days / 2) / 365
    np.testing.assert_allclose(fraction, mid_month, atol=1e-6)


def test_monthly_360_day_stamps():
    fraction = year_fraction(dates("2001-01-01", 12, "360_day", freq="MS"))
    np.testing.assert_allclose(fraction, (np.arange(12) * 30 + 15) / 360, atol=1e-6)


def test_duplicated_stamps_are_named():
    time = xr.DataArray(np.array(["2001-01-01", "2001-01-02", "2001-01-02"], "datetime64[ns]"), dims="time")
    with pytest.raises(InputError, match="duplicated stamps.*2001-01-02"):
        check_time_axis(time)


def test_non_monotonic_time_is_named():
    time = xr.DataArray(np.array(["2001-01-02", "2001-01-01"], "datetime64[ns]"), dims="time")
    with pytest.raises(InputError, match="not increasing.*position 1"):
        check_time_axis(time)


def test_segments_split_at_gaps_only():
    daily = dates("2001-01-01", 400)
    winters = daily.where(daily.dt.month.isin([12, 1, 2]), drop=True)
    assert contiguous_segments(winters) == [slice(0, 59), slice(59, 125)]
    assert contiguous_segments(dates("2001-01-01", 24, freq="MS")) == [slice(0, 24)]
