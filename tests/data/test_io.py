"""Reading NetCDF/Zarr into canonical fields: axes, channels, crops, seasons, errors."""

import os
import warnings
from pathlib import Path

import cftime
import dask.array
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from faconvlstm.data.alignment import DataAligned, mid_month
from faconvlstm.data.io import (
    load_fields,
    open_dataset,
    parse_variables,
    season_months,
    select_fields,
    standardize_axes,
)
from faconvlstm.errors import InputError

LAT = np.array([-20.0, 0.0, 20.0, 40.0])
LON = np.arange(0.0, 360.0, 30.0)  # 0..330, stored in the 0..360 convention


def gridded(days=6, start="2000-01-01", lat=LAT, lon=LON, levels=(1000.0, 850.0, 500.0)):
    """A canonical-named dataset: z(time, level, lat, lon), t2m(time, lat, lon), tp (no units).

    Values encode their position, so a selection can be checked against a hand computation:
    z = level + lat / 100 + lon / 1000 + 10 * day, t2m = 200 + lat + lon / 1000 + day.
    """
    time = pd.date_range(start, periods=days)
    day = np.arange(days, dtype=float)[:, None, None]
    grid = lat[:, None] / 100.0 + lon[None, :] / 1000.0
    z = np.asarray(levels)[None, :, None, None] + grid + 10.0 * day[..., None]
    t2m = 200.0 + lat[:, None] + lon[None, :] / 1000.0 + day
    return xr.Dataset(
        {
            "z": (("time", "level", "lat", "lon"), z, {"units": "m**2 s**-2"}),
            "t2m": (("time", "lat", "lon"), t2m, {"units": "K"}),
            "tp": (("time", "lat", "lon"), np.ones_like(t2m)),
        },
        coords={
            "time": time,
            "level": ("level", list(levels), {"units": "hPa"}),
            "lat": lat,
            "lon": lon,
        },
    )


def write(ds, path):
    ds.to_netcdf(path)
    return path


def test_era5_like_file_gets_canonical_axes_and_merges_expver(tmp_path):
    times = pd.date_range("2020-01-01", periods=4)
    latitude = np.array([60.0, 30.0, 0.0, -30.0])  # descending, as ERA5
    longitude = np.arange(0.0, 360.0, 90.0)
    rng = np.random.default_rng(0)
    values = rng.normal(size=(2, 2, 4, 2, 4, 4))  # number, expver, time, level, lat, lon
    values[:, 0, 2:] = np.nan  # ERA5 (expver 1) missing the last days, ERA5T (5) has them
    values[:, 1, :2] = np.nan
    raw = xr.Dataset(
        {
            "z": (
                ("number", "expver", "valid_time", "pressure_level", "latitude", "longitude"),
                values,
            )
        },
        coords={
            "number": [0, 1],
            "expver": ["0001", "0005"],
            "valid_time": times,
            "pressure_level": ("pressure_level", [850.0, 500.0], {"units": "hPa"}),
            "latitude": ("latitude", latitude, {"units": "degrees_north"}),
            "longitude": ("longitude", longitude, {"units": "degrees_east"}),
        },
    )
    ds = standardize_axes(open_dataset(write(raw, tmp_path / "era5.nc")))

    assert ds["z"].dims == ("time", "level", "lat", "lon")
    assert "number" not in ds.variables and "expver" not in ds.variables
    np.testing.assert_array_equal(ds["lat"], [-30.0, 0.0, 30.0, 60.0])
    np.testing.assert_array_equal(ds["lon"], [-180.0, -90.0, 0.0, 90.0])
    first_member = np.where(np.isnan(values[0, 0]), values[0, 1], values[0, 0])
    expected = first_member[:, :, ::-1][..., [2, 3, 0, 1]]  # lat reversed, lon rolled
    np.testing.assert_allclose(ds["z"].values, expected)
    assert not np.isnan(ds["z"].values).any()


def test_cmip_like_file_with_pa_levels_and_noleap_calendar(tmp_path):
    time = xr.date_range("2001-02-27", periods=4, calendar="noleap", use_cftime=True)
    levels = np.array([100000.0, 85000.0, 50000.0])
    z = np.arange(4 * 3 * 2 * 3, dtype=float).reshape(4, 3, 2, 3)
    raw = xr.Dataset(
        {"zg": (("t", "plev", "y", "x"), z, {"units": "m"})},
        coords={
            "t": ("t", time, {"axis": "T"}),
            "plev": ("plev", levels, {"units": "Pa", "standard_name": "air_pressure", "axis": "Z"}),
            "y": ("y", [10.0, 20.0], {"standard_name": "latitude"}),
            "x": ("x", [0.0, 120.0, 240.0], {"standard_name": "longitude"}),
        },
    )
    fields = load_fields(write(raw, tmp_path / "cmip.nc"), "zg@500")

    assert fields.dims == ("time", "lat", "lon", "channel")
    assert isinstance(fields["time"].values[0], cftime.DatetimeNoLeap)
    np.testing.assert_array_equal(fields["lon"], [-120.0, 0.0, 120.0])
    np.testing.assert_allclose(fields.values[..., 0], z[:, 2][..., [2, 0, 1]])
    # 2001 has no 29 February in the noleap calendar: 27 Feb .. 2 Mar are four days.
    window = load_fields(tmp_path / "cmip.nc", "zg@850", time=("2001-02-28", "2001-03-01"))
    assert [stamp.day for stamp in window["time"].values] == [28, 1]
    np.testing.assert_allclose(window.values[..., 0], z[1:3, 1][..., [2, 0, 1]])


def test_per_variable_and_per_year_files_merge_from_a_glob(tmp_path):
    ds = gridded(days=6, start="2000-12-29")
    for name in ("z", "t2m"):
        for year, part in ds[[name]].groupby("time.year"):
            write(part, tmp_path / f"{name}_{year}.nc")
    merged = open_dataset(str(tmp_path / "*.nc"))
    listed = open_dataset(sorted(tmp_path.glob("*.nc")))

    for combined in (merged, listed):
        xr.testing.assert_allclose(combined[["z", "t2m"]].compute(), ds[["z", "t2m"]])
    assert merged["z"].chunks is not None


def test_files_on_grids_that_do_not_coincide_are_refused_naming_each_extent(tmp_path):
    write(gridded()[["z"]], tmp_path / "z.nc")
    write(gridded(lat=LAT + 1.0)[["t2m"]], tmp_path / "t2m.nc")
    with pytest.raises(InputError, match=r"share no lat grid line \(t2m.nc: lat -19..41; "
                       r"z.nc: lat -20..40\); expected files that overlap"):
        open_dataset(str(tmp_path / "*.nc"))
    write(gridded(lon=np.arange(0.0, 360.0, 15.0))[["t2m"]], tmp_path / "t2m.nc")
    with pytest.raises(InputError, match=r"'t2m.nc' has lon grid lines \(15, 45, 75\.\.\.\) "
                       "that the other files lack inside the region they share"):
        open_dataset(str(tmp_path / "*.nc"))


def test_files_of_different_regions_are_cut_to_the_region_they_share(tmp_path):
    ds = gridded()
    write(ds[["z"]], tmp_path / "z.nc")  # global: lon 0..330
    write(ds[["t2m"]].isel(lat=slice(1, None), lon=[4, 5, 6, 7]), tmp_path / "t2m.nc")
    with pytest.warns(DataAligned, match=r"latitudes 0..40, longitudes 120..210 \(3 x 4 cells\)"):
        fields = load_fields(str(tmp_path / "*.nc"), "z@500,t2m")

    np.testing.assert_array_equal(fields["lat"], LAT[1:])
    np.testing.assert_array_equal(fields["lon"], [120.0, 150.0, 180.0, 210.0])
    expected = ds["t2m"].isel(lat=slice(1, None), lon=[4, 5, 6, 7]).transpose("time", "lat", "lon")
    np.testing.assert_allclose(fields.sel(channel="t2m").values, expected.values)
    assert not fields.isnull().any()


def test_monthly_files_stamped_on_different_days_meet_month_by_month(tmp_path):
    ds = gridded(days=14)
    middle = pd.date_range("2000-01-01", periods=14, freq="MS") + pd.Timedelta(days=14)
    write(ds[["z"]].assign_coords(time=middle), tmp_path / "z.nc")
    write(ds[["t2m"]].assign_coords(time=pd.date_range("2000-01-31", periods=14, freq="ME")),
          tmp_path / "t2m.nc")
    with pytest.warns(DataAligned, match=r"t2m.nc: days 28, 29, 30, 31; z.nc: days 15\)"):
        fields = load_fields(str(tmp_path / "*.nc"), "z@500,t2m")

    assert fields.sizes["time"] == 14 and not fields.isnull().any()
    assert str(fields["time"].values[0]) == "2000-01-16T12:00:00.000000000"
    assert str(fields["time"].values[1]) == "2000-02-15T12:00:00.000000000"  # 29 days
    np.testing.assert_allclose(np.sort(fields.sel(channel="t2m").values, axis=-1),
                               ds["t2m"].transpose("time", "lat", "lon").values)


def test_mid_month_of_a_360_day_calendar():
    time = xr.DataArray(xr.date_range("2000-01-30", periods=3, freq="MS", calendar="360_day",
                                      use_cftime=True), dims="time")
    assert [str(t) for t in mid_month(time).values] == [
        "2000-02-16 00:00:00", "2000-03-16 00:00:00", "2000-04-16 00:00:00"
    ]


def test_a_lone_variable_without_units_takes_the_files_global_units(tmp_path):
    ds = gridded()[["t2m"]]
    ds["t2m"].attrs.pop("units")
    path = write(ds.assign_attrs(units="C"), tmp_path / "sst.nc")

    assert list(load_fields(path, "t2m")["units"].values) == ["C"]


def test_a_regional_grid_across_the_dateline_stays_one_block(tmp_path):
    path = write(gridded(lon=np.arange(150.0, 280.0, 30.0))[["t2m"]], tmp_path / "pacific.nc")

    np.testing.assert_array_equal(load_fields(path, "t2m")["lon"], [150.0, 180.0, 210.0, 240.0,
                                                                      270.0])


def hour_counts(ds: xr.Dataset, name: str = "timestep", step: float = 6.0) -> xr.Dataset:
    """``ds`` with its time axis replaced by bare hour counts on dimension ``name``."""
    hours = np.arange(ds.sizes["time"]) * step
    return ds.drop_vars("time").rename(time=name).assign_coords({name: hours})


def test_bare_hour_counts_train_through_time_dim_and_units(tmp_path):
    path = write(hour_counts(gridded())[["t2m"]], tmp_path / "nmc.nc")
    with pytest.raises(InputError, match=r"No time axis found.*--time-dim, --time-units"):
        load_fields(path, "t2m")

    fields = load_fields(path, "t2m", time_dim="timestep",
                         time_units="hours since 1996-01-05 00:00")

    np.testing.assert_array_equal(
        fields["time"].values[:3],
        np.array(["1996-01-05T00", "1996-01-05T06", "1996-01-05T12"], "datetime64[ns]"),
    )
    np.testing.assert_allclose(fields.sel(channel="t2m").values,
                               # longitudes wrapped to [-180, 180): 180..330 first
                               gridded()["t2m"].transpose("time", "lat", "lon").values[:, :, [
                                   6, 7, 8, 9, 10, 11, 0, 1, 2, 3, 4, 5]])


def test_an_integer_time_index_of_a_zarr_store_takes_the_given_units(tmp_path):
    ds = gridded()[["t2m"]]
    ds = ds.assign_coords(time=np.arange(ds.sizes["time"])).assign_attrs(
        time_units="days since 1979-01-01"
    )
    ds.to_zarr(tmp_path / "store.zarr", zarr_format=2)
    with pytest.raises(InputError, match=r"holds int64 values, not dates.*--time-units"):
        load_fields(tmp_path / "store.zarr", "t2m")

    fields = load_fields(tmp_path / "store.zarr", "t2m", time_units="days since 1979-01-01")

    assert fields["time"].values[1] == np.datetime64("1979-01-02")


@pytest.mark.parametrize(
    ("time_dim", "time_units", "message"),
    [
        ("timestep", None, r"'timestep' holds numbers without units; give them with time_units"),
        ("steps", "hours since 2000-01-01", r"no dimension 'steps' \(dims: timestep, lat, lon\)"),
        ("timestep", "hours", r"'hours' of dimension 'timestep' are not CF time units"),
        ("timestep", "furlongs since 2000-01-01", r"cannot decode the time dimension 'timestep'"),
    ],
)
def test_time_axis_options_that_do_not_fit_name_the_fix(time_dim, time_units, message):
    with pytest.raises(InputError, match=message):
        load_fields(hour_counts(gridded())[["t2m"]], "t2m", time_dim=time_dim,
                    time_units=time_units)


def test_units_for_a_time_axis_of_dates_are_refused():
    with pytest.raises(InputError, match="holds dates already; leave out time_units"):
        load_fields(gridded(), "t2m", time_units="days since 2000-01-01")


def test_xarray_objects_load_like_files(tmp_path):
    ds = gridded()
    from_file = load_fields(write(ds, tmp_path / "data.nc"), ["t2m", "z@500"])

    xr.testing.assert_identical(load_fields(ds, ["t2m", "z@500"]).compute(), from_file.compute())
    xr.testing.assert_identical(
        load_fields([ds["t2m"], ds[["z"]]], ["t2m", "z@500"]).compute(), from_file.compute()
    )
    with pytest.raises(InputError, match="mix paths and xarray objects"):
        load_fields([ds, tmp_path / "data.nc"], "t2m")


def test_zarr_store_is_read_lazily(tmp_path):
    ds = gridded()
    ds.to_zarr(tmp_path / "store.zarr", zarr_format=2)
    opened = open_dataset(tmp_path / "store.zarr")

    assert isinstance(opened["z"].data, dask.array.Array)
    xr.testing.assert_allclose(opened.compute(), ds)


def test_channels_names_units_values_and_laziness(tmp_path):
    path = write(gridded(days=40), tmp_path / "data.nc")
    fields = load_fields(path, ["z@500,t2m", "tp"])

    assert open_dataset(path)["t2m"].chunks == ((32, 8), (4,), (12,))

    assert fields.dims == ("time", "lat", "lon", "channel")
    assert fields.dtype == np.float32
    assert isinstance(fields.data, dask.array.Array)
    assert list(fields["channel"].values) == ["z@500", "t2m", "tp"]
    assert list(fields["units"].values) == ["m**2 s**-2", "K", "1"]
    lon = np.array([-180.0, -150, -120, -90, -60, -30, 0, 30, 60, 90, 120, 150])
    np.testing.assert_array_equal(fields["lon"], lon)
    day = np.arange(40.0)[:, None, None]
    expected_z = 500.0 + LAT[:, None] / 100.0 + np.mod(lon, 360.0) / 1000.0 + 10.0 * day
    np.testing.assert_allclose(fields.sel(channel="z@500").values, expected_z, rtol=1e-6)


def test_parse_variables():
    assert parse_variables("z@500, t@850,t2m") == [("z", 500.0), ("t", 850.0), ("t2m", None)]
    assert parse_variables(["z@500", "t2m"]) == [("z", 500.0), ("t2m", None)]
    for bad in ("z@", "@500", "z@500hPa", "z@500@1", "z@500,,t2m", ""):
        with pytest.raises(InputError, match="Cannot parse variable"):
            parse_variables(bad)
    with pytest.raises(InputError, match="requested twice"):
        parse_variables("z@500,z@500.0")


@pytest.mark.parametrize(
    "region",
    [(10, 60, 160, -120), (10, 60, 160, 240)],
    ids=["signed", "0..360"],
)
def test_crop_across_the_dateline_is_contiguous(region):
    ds = standardize_axes(gridded())
    fields = select_fields(ds, "t2m", region=region)

    np.testing.assert_array_equal(fields["lon"], [180.0, 210.0, 240.0])
    np.testing.assert_array_equal(fields["lat"], [20.0, 40.0])
    expected = 200.0 + LAT[2:, None] + np.array([180.0, 210.0, 240.0]) / 1000.0
    np.testing.assert_allclose(fields.values[0, ..., 0], expected, rtol=1e-6)


@pytest.mark.parametrize("region", [(-20, 0, -60, 30), (-20, 0, 300, 30)], ids=["signed", "0..360"])
def test_crop_across_greenwich_on_0_360_data(region):
    ds = xr.Dataset({"t2m": gridded()["t2m"]})  # not standardized: lon stays 0..330
    fields = select_fields(ds, "t2m", region=region)

    np.testing.assert_array_equal(fields["lon"], [-60.0, -30.0, 0.0, 30.0])
    stored = np.array([300.0, 330.0, 0.0, 30.0])
    expected = 200.0 + LAT[:2, None] + stored / 1000.0
    np.testing.assert_allclose(fields.values[0, ..., 0], expected, rtol=1e-6)


def test_season_selects_only_its_months():
    ds = standardize_axes(gridded(days=180, start="2000-10-01"))
    djf = select_fields(ds, "t2m", season="DJF")
    by_numbers = select_fields(ds, "t2m", season=[12, 1, 2])

    assert set(djf["time"].dt.month.values) == {12, 1, 2}
    assert djf.sizes["time"] == 31 + 31 + 28  # December 2000, January and February 2001
    xr.testing.assert_identical(djf, by_numbers)
    assert season_months("NDJFM") == [11, 12, 1, 2, 3]
    assert season_months("mam") == [3, 4, 5]


def test_time_range_is_inclusive():
    ds = standardize_axes(gridded(days=10))
    fields = select_fields(ds, "t2m", time=("2000-01-03", "2000-01-05"))

    assert list(fields["time"].dt.day.values) == [3, 4, 5]
    np.testing.assert_allclose(fields.values[:, 0, 0, 0], 200.0 - 20.0 + 0.18 + np.array([2, 3, 4]))


def test_coarsen_is_a_nan_aware_block_mean():
    values = np.arange(2 * 5 * 5, dtype=float).reshape(2, 5, 5)
    values[0, 0, 0] = np.nan  # one NaN in a block: the mean of the other three
    values[0, 2:4, 2:4] = np.nan  # a block of NaN stays NaN
    ds = xr.Dataset(
        {"sst": (("time", "lat", "lon"), values)},
        coords={
            "time": pd.date_range("2000-01-01", periods=2),
            "lat": np.arange(5.0),
            "lon": np.arange(5.0),
        },
    ).chunk()
    fields = select_fields(ds, "sst", coarsen=2)

    assert fields.sizes == {"time": 2, "lat": 2, "lon": 2, "channel": 1}  # edge trimmed
    # values[t, i, j] = 25 t + 5 i + j; block means by hand, NaN cells left out.
    expected = np.array([[[4.0, 5.0], [13.0, np.nan]], [[28.0, 30.0], [38.0, 40.0]]])
    np.testing.assert_allclose(fields.values[..., 0], expected, rtol=1e-6)
    np.testing.assert_array_equal(fields["lat"], [0.5, 2.5])


def test_missing_files_are_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.nc"):
        open_dataset(tmp_path / "absent.nc")
    with pytest.raises(FileNotFoundError, match=r"No files match the pattern .*\*\.nc"):
        open_dataset(str(tmp_path / "*.nc"))


def test_a_file_that_is_not_netcdf_or_is_truncated_is_an_input_error(tmp_path):
    garbage = tmp_path / "garbage.nc"
    garbage.write_bytes(b"this is not a netcdf file" * 10)
    with pytest.raises(InputError, match="cannot read '.*garbage.nc' as NetCDF or Zarr: [^\n]+$"):
        open_dataset(garbage)
    write(gridded(), tmp_path / "good.nc")
    with pytest.raises(InputError, match="cannot read '.*garbage.nc' as NetCDF or Zarr: "):
        open_dataset([tmp_path / "good.nc", garbage])
    whole = (tmp_path / "good.nc").read_bytes()
    (tmp_path / "truncated.nc").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputError, match="cannot read '.*truncated.nc' as NetCDF or Zarr: "):
        open_dataset(tmp_path / "truncated.nc")


def test_a_file_the_system_cannot_read_is_a_permission_error(tmp_path, monkeypatch):
    write(gridded(), tmp_path / "secret.nc")
    real_access = os.access

    def access(path, mode, **kwargs):  # what a non-root user sees, also when tests run as root
        if Path(path).name == "secret.nc" and mode & os.R_OK:
            return False
        return real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    with pytest.raises(PermissionError, match="'.*secret.nc' is not readable"):
        open_dataset(tmp_path / "secret.nc")
    with pytest.raises(PermissionError, match="'.*secret.nc' is not readable"):
        open_dataset(str(tmp_path / "*.nc"))


@pytest.mark.parametrize(
    "variables, message",
    [
        ("q@500", "Variable 'q' is not in the dataset; available: t2m, tp, z"),
        ("z@700", r"Level 700 of 'z' is not in the data; levels: 1000, 850, 500 hPa"),
        ("t2m@500", "'t2m' has no level dimension; write 't2m' instead of 't2m@500'"),
        ("z", r"'z' has levels 1000, 850, 500 hPa; choose one as 'z@<level>'"),
    ],
)
def test_variable_errors(variables, message):
    with pytest.raises(InputError, match=message):
        select_fields(standardize_axes(gridded()), variables)


def test_time_axis_errors():
    ds = gridded()
    with pytest.raises(
        InputError, match=r"No time axis found among the dimensions \(level, lat, lon\)"
    ):
        standardize_axes(ds.isel(time=0, drop=True))
    with pytest.raises(InputError, match="duplicated stamps"):
        standardize_axes(ds.isel(time=[0, 1, 1, 2]))
    with pytest.raises(InputError, match="not increasing"):
        standardize_axes(ds.isel(time=[0, 2, 1]))


def test_selection_errors():
    ds = gridded()
    ds["z"][:, 2] = np.nan  # z@500 holds no data at all
    ds = standardize_axes(ds)
    with pytest.raises(InputError, match="region .* holds no grid cells"):
        select_fields(ds, "t2m", region=(50, 60, 0, 40))
    with pytest.raises(InputError, match="No timesteps between '2001-01-01' and '2001-02-01'"):
        select_fields(ds, "t2m", time=("2001-01-01", "2001-02-01"))
    with pytest.raises(InputError, match="Channel.* z@500 are all NaN"):
        select_fields(ds, "t2m,z@500")
    for season, reason in [
        ("DFJ", "not consecutive"),
        ("J", "ambiguous"),
        ("XYZ", "not consecutive"),
    ]:
        with pytest.raises(InputError, match=f"Season '{season}' is {reason}"):
            select_fields(ds, "t2m", season=season)
    with pytest.raises(InputError, match="integers 1..12"):
        select_fields(ds, "t2m", season=[0, 13])
    with pytest.raises(InputError, match="No timesteps fall in season 'JJA'"):
        select_fields(ds, "t2m", season="JJA")


def test_a_variable_on_a_single_level_needs_no_level(tmp_path):
    path = write(gridded(levels=(500.0,)), tmp_path / "z500.nc")
    plain, named = load_fields(path, "z"), load_fields(path, "z@500")

    assert list(plain["channel"].values) == ["z"] and list(named["channel"].values) == ["z@500"]
    np.testing.assert_array_equal(plain.values, named.values)
    np.testing.assert_allclose(plain.values[0, 0, 0, 0], 500.0 - 0.2 + 0.18)


def test_chunked_storage_is_read_in_whole_stored_chunks_without_warnings(tmp_path):
    """Dask chunks are multiples of the stored ones, per variable, also where a variable is
    stored in a single chunk along time (time bounds): no chunking warning, same values."""
    ds = gridded(days=100)
    bounds = np.stack([ds["time"].values, ds["time"].values + np.timedelta64(1, "D")], axis=1)
    ds = ds.assign(time_bnds=(("time", "bnds"), bounds))
    ds["time"].attrs["bounds"] = "time_bnds"
    encoding = {
        "z": {"chunksizes": (10, 1, 4, 12)},
        "t2m": {"chunksizes": (1, 2, 12)},
        "time_bnds": {"chunksizes": (100, 2)},
        "time": {"units": "days since 2000-01-01"},
    }
    path = tmp_path / "chunked.nc"
    ds.to_netcdf(path, encoding=encoding)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opened = open_dataset(path)
        fields = load_fields(path, "z@500,t2m").load()
    assert opened["z"].chunks == ((40, 40, 20), (1, 1, 1), (4,), (12,))
    assert opened["t2m"].chunks == ((32, 32, 32, 4), (2, 2), (12,))
    assert opened["time_bnds"].chunks == ((100,), (2,))
    expected = select_fields(standardize_axes(ds), "z@500,t2m")
    np.testing.assert_allclose(fields.values, expected.values)
    opened.close()
