"""User index files: CSV and NetCDF reading, alignment onto the data's time, clear errors."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from faconvlstm.data.calendar import seasonal_harmonics, year_fraction
from faconvlstm.data.indices import align_index, read_indices, region_index
from faconvlstm.errors import InputError


def daily_time(calendar="standard", periods=365):
    return xr.DataArray(
        xr.date_range("2000-01-01", periods=periods, freq="D", calendar=calendar,
                      use_cftime=calendar != "standard"),
        dims="time",
    )


def test_a_daily_csv_index_aligns_exactly_on_the_same_days(tmp_path, rng):
    values = rng.normal(size=365)
    days = pd.date_range("2000-01-01", periods=365, freq="D")
    # Written in reverse order: reading sorts by date.
    pd.DataFrame({"date": days, "nino34": values}).iloc[::-1].to_csv(
        tmp_path / "nino.csv", index=False
    )
    index = read_indices(tmp_path / "nino.csv")["nino34"]
    np.testing.assert_allclose(align_index(index, daily_time()), values, rtol=1e-12)


@pytest.mark.parametrize("calendar", ["standard", "noleap"])
def test_a_monthly_index_meets_daily_data_at_mid_month(tmp_path, calendar):
    months = pd.date_range("2000-01-01", periods=14, freq="MS")
    pd.DataFrame({"nao": np.arange(14.0)}, index=months).to_csv(tmp_path / "nao.csv")
    time = daily_time(calendar, periods=365)
    aligned = align_index(read_indices(tmp_path / "nao.csv")["nao"], time)
    # Before mid-January there is nothing to interpolate from.
    assert np.isnan(aligned[:10]).all() and np.isfinite(aligned[20:]).all()
    # Mid-month carries the month's value (within the day a year fraction can shift between
    # calendars); values rise linearly in between.
    mid_march = 31 + (29 if calendar == "standard" else 28) + 15
    assert aligned[mid_march] == pytest.approx(2.0, abs=0.05)
    assert np.all(np.diff(aligned[20:]) > 0)


def test_every_series_of_a_netcdf_file_is_an_index(tmp_path, rng):
    time = pd.date_range("2000-01-01", periods=40, freq="D")
    xr.Dataset(
        {"enso": ("time", rng.normal(size=40)), "pna": ("time", rng.normal(size=40)),
         "grid": (("time", "x"), rng.normal(size=(40, 2)))},
        coords={"time": time},
    ).to_netcdf(tmp_path / "indices.nc")
    assert sorted(read_indices(tmp_path / "indices.nc")) == ["enso", "pna"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("date,phase\n2000-01-01,warm\n2000-01-02,cold\n", "columns \\['phase'\\] are not numeric"),
        ("date,nino\nnot a date,1.0\n", "as CSV with dates in the first column"),
        ("date,nino\n2000-01-01,1.0\n", "fewer than 2 valid values"),
    ],
)
def test_bad_csv_files_say_what_was_expected(tmp_path, content, message):
    (tmp_path / "bad.csv").write_text(content)
    with pytest.raises(InputError, match=message):
        read_indices(tmp_path / "bad.csv")


def test_a_netcdf_file_without_time_is_refused(tmp_path):
    xr.Dataset({"nino": ("x", [1.0, 2.0])}).to_netcdf(tmp_path / "static.nc")
    with pytest.raises(InputError, match="has no time axis"):
        read_indices(tmp_path / "static.nc")


def test_missing_file_and_no_overlap_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_indices(tmp_path / "absent.csv")
    index = xr.DataArray(
        [1.0, 2.0], dims="time", coords={"time": pd.to_datetime(["1950-01-01", "1950-02-01"])},
        name="old",
    )
    with pytest.raises(InputError, match="covers 0 of the data's timesteps"):
        align_index(index, daily_time())


def test_a_region_index_is_the_area_mean_anomaly_of_its_cells(rng):
    time = xr.date_range("2000-01-01", periods=48, freq="MS")
    signal = rng.normal(size=48)
    season = np.cos(2 * np.pi * year_fraction(xr.DataArray(time, dims="time")))
    lat = np.array([-30.0, 0.0, 30.0])
    values = (signal[:, None, None] * np.array([1.0, 2.0, 1.0])[:, None]
              + 5.0 * season[:, None, None] + 20.0)[..., None] * np.ones((1, 1, 4, 1))
    values[:, 1, 0] = np.nan  # a land cell
    fields = xr.DataArray(values, dims=("time", "lat", "lon", "channel"),
                          coords={"time": time, "lat": lat, "lon": np.arange(4.0),
                                  "channel": ["sst"], "units": ("channel", ["K"])})
    index = region_index(fields)
    weights = np.cos(np.deg2rad(lat))
    # the valid cells' area weights: 4, 3 and 4 cells in the three rows
    scale = (weights * np.array([1, 2, 1]) * [4, 3, 4]).sum() / (weights * [4, 3, 4]).sum()
    fraction = year_fraction(fields["time"])
    basis = np.concatenate([np.ones((48, 1)), seasonal_harmonics(fraction, 3)], axis=1)
    residual = signal - basis @ np.linalg.lstsq(basis, signal, rcond=None)[0]
    np.testing.assert_allclose(index.values, scale * residual, atol=1e-5)
    assert index.attrs["units"] == "K" and index.name == "sst"
    with pytest.raises(InputError, match="An index is made of one variable; got 2 channels"):
        region_index(xr.concat([fields, fields.assign_coords(channel=["t"])], "channel"))
