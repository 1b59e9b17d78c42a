"""The synthetic dataset: CF layout, reproducibility, physics, and factors really in the fields."""

import time

import numpy as np
import pytest
import xarray as xr

from faconvlstm.data.calendar import year_fraction
from faconvlstm.data.synthetic import (
    ENSO_POLES,
    FACTORS,
    LEVELS,
    REGIME_DIPOLES,
    TELECONNECTION_CENTER,
    make_synthetic_dataset,
    write_synthetic_dataset,
)
from faconvlstm.errors import InputError

VARIABLES = {"t2m": "K", "msl": "Pa", "z": "m2 s-2", "tp": "mm day-1", "sst": "K"}


@pytest.fixture(scope="module")
def dataset() -> xr.Dataset:
    started = time.perf_counter()
    built = make_synthetic_dataset()
    print(f"default synthetic dataset (4 years daily, 24x36) built in "
          f"{time.perf_counter() - started:.2f} s")
    return built


def residual(values: np.ndarray, *regressors: np.ndarray) -> np.ndarray:
    """What the least-squares fit of ``values`` on ``regressors`` plus an intercept leaves."""
    design = np.column_stack([np.ones_like(values), *regressors])
    return values - design @ np.linalg.lstsq(design, values, rcond=None)[0]


def r_squared(values: np.ndarray, *regressors: np.ndarray) -> float:
    return 1.0 - residual(values, *regressors).var() / values.var()


def annual_harmonics(series: xr.DataArray) -> list[np.ndarray]:
    phase = 2.0 * np.pi * year_fraction(series.time).astype("float64")
    return [np.cos(phase), np.sin(phase), np.cos(2 * phase), np.sin(2 * phase)]


def deseasonalised(series: xr.DataArray) -> np.ndarray:
    """``series`` minus its fit on two annual harmonics."""
    return residual(series.values.astype("float64"), *annual_harmonics(series))


def explained(series: xr.DataArray, *factors: np.ndarray) -> float:
    """Share of the deseasonalised variance of ``series`` that ``factors`` explain (partial R^2),
    fitted jointly with two annual harmonics."""
    seasonal = annual_harmonics(series)
    values = series.values.astype("float64")
    full = residual(values, *seasonal, *factors).var()
    return 1.0 - full / residual(values, *seasonal).var()


def at(field: xr.DataArray, center: tuple[float, float]) -> xr.DataArray:
    return field.sel(lat=center[0], lon=center[1], method="nearest")


def test_dimensions_coordinates_and_cf_attributes(dataset):
    assert dict(dataset.sizes) == {"time": 1461, "lat": 24, "lon": 36, "level": 2}
    assert np.all(np.diff(dataset.lat) > 0) and 20 <= dataset.lat.min() < dataset.lat.max() <= 75
    assert -80 <= dataset.lon.min() < 0 < dataset.lon.max() <= 40
    assert dataset.level.values.tolist() == list(LEVELS) == [500, 850]
    for name, standard_name, units, axis in (("lat", "latitude", "degrees_north", "Y"),
                                             ("lon", "longitude", "degrees_east", "X"),
                                             ("level", "air_pressure", "hPa", "Z")):
        attrs = dataset[name].attrs
        assert (attrs["standard_name"], attrs["units"], attrs["axis"]) == (standard_name, units,
                                                                          axis)
    assert dataset.time.attrs["axis"] == "T"
    for name, units in VARIABLES.items():
        variable = dataset[name]
        assert variable.dtype == np.float32
        assert variable.attrs["units"] == units
        assert variable.attrs["standard_name"] and variable.attrs["long_name"]
        spatial = ("time", "level", "lat", "lon") if name == "z" else ("time", "lat", "lon")
        assert variable.dims == spatial
    assert dataset.land_mask.dims == ("lat", "lon")
    assert set(np.unique(dataset.land_mask)) == {0, 1}
    assert dataset.attrs["title"] and "teleconnection" in dataset.attrs["description"]


def test_factors_are_stored_with_the_time_axis(dataset):
    assert FACTORS == ("season", "enso", "teleconnection", "regime", "trend")
    for name in FACTORS:
        factor = dataset[f"factor_{name}"]
        assert factor.dims == ("time",) and factor.size == dataset.time.size
        assert factor.attrs["long_name"] and factor.attrs["description"]
        assert np.all(np.isfinite(factor))
    for name in ("enso", "teleconnection"):
        factor = dataset[f"factor_{name}"]
        assert float(factor.mean()) == pytest.approx(0.0, abs=1e-4)
        assert float(factor.std()) == pytest.approx(1.0, abs=1e-4)
    assert float(dataset.factor_trend[0]) == 0.0
    assert float(dataset.factor_trend[-1]) == pytest.approx(4.0, abs=0.01)
    regime = dataset.factor_regime
    assert set(np.unique(regime)) == {0, 1, 2, 3}
    assert regime.attrs["flag_meanings"].split() == [name for name, _, _ in REGIME_DIPOLES]


def test_same_seed_same_data_other_seed_other_data(dataset):
    again = make_synthetic_dataset()
    xr.testing.assert_identical(dataset, again)
    other = make_synthetic_dataset(seed=1)
    assert not np.allclose(other.factor_enso, dataset.factor_enso)
    assert not np.allclose(other.t2m, dataset.t2m)


def test_nan_only_in_sst_and_exactly_on_land(dataset):
    land = dataset.land_mask.values.astype(bool)
    assert 0.1 < land.mean() < 0.6
    for name in ("t2m", "msl", "z", "tp"):
        assert np.all(np.isfinite(dataset[name].values)), name
    missing = np.isnan(dataset.sst.values)
    np.testing.assert_array_equal(missing, np.broadcast_to(land, missing.shape))


def test_precipitation_is_non_negative_skewed_and_often_near_zero(dataset):
    rain = dataset.tp.values.ravel().astype("float64")
    assert rain.min() >= 0.0
    skewness = np.mean((rain - rain.mean()) ** 3) / rain.std() ** 3
    assert skewness > 1.0
    assert np.mean(rain < 0.1) > 0.3


def test_geopotential_is_coupled_to_pressure_and_temperature(dataset):
    heights = dataset.z.mean(("time", "lat", "lon")).values / 9.80665
    assert 5000 < heights[0] < 6000 and 1200 < heights[1] < 1700
    cell = at(dataset, (50.0, -20.0))
    thickness = (cell.z.sel(level=500) - cell.z.sel(level=850)).values
    assert np.corrcoef(thickness, cell.t2m.values)[0, 1] > 0.99
    assert np.corrcoef(deseasonalised(cell.z.sel(level=850)), deseasonalised(cell.msl))[0, 1] > 0.9


def test_regimes_persist(dataset):
    regime = dataset.factor_regime.values
    changes = np.flatnonzero(np.diff(regime)) + 1
    dwell = np.diff(np.concatenate([[0], changes, [regime.size]]))
    assert dwell.mean() >= 5.0


def test_season_is_in_inland_temperature(dataset):
    inland_north = at(dataset.t2m, (65.0, 35.0))
    assert r_squared(inland_north.values, dataset.factor_season.values) > 0.9


def test_enso_is_in_its_dipole(dataset):
    enso = dataset.factor_enso.values
    for name in ("t2m", "sst", "msl"):
        for pole in ENSO_POLES:
            assert explained(at(dataset[name], pole), enso) > 0.5, (name, pole)


def test_teleconnection_follows_enso_with_a_lag_and_its_own_noise(dataset):
    enso = dataset.factor_enso.values
    teleconnection = dataset.factor_teleconnection.values

    def lagged_correlation(days: int) -> float:
        return np.corrcoef(enso[:enso.size - days], teleconnection[days:])[0, 1]

    best = max(lagged_correlation(days) for days in (30, 45, 60, 75, 90))
    assert best > lagged_correlation(0) + 0.05
    assert 0.4 < best < 0.9


def test_teleconnection_is_remote_only(dataset):
    enso = dataset.factor_enso.values
    teleconnection = dataset.factor_teleconnection.values
    for name in ("t2m", "msl"):
        remote = at(dataset[name], TELECONNECTION_CENTER)
        assert explained(remote, teleconnection) > 0.5
        assert explained(remote, enso, teleconnection) - explained(remote, enso) > 0.2
        local = at(dataset[name], ENSO_POLES[0])
        assert explained(local, enso, teleconnection) - explained(local, enso) < 0.02


def test_regimes_are_in_the_pressure_field(dataset):
    one_hot = np.eye(4)[dataset.factor_regime.values][:, 1:]
    for _, high, low in REGIME_DIPOLES:
        for center in (high, low):
            assert explained(at(dataset.msl, center), one_hot) > 0.5


def test_trend_is_in_the_annual_mean_temperature():
    long = make_synthetic_dataset(years=20, nlat=8, nlon=12, seed=3)
    annual = long.t2m.mean(("lat", "lon")).groupby("time.year").mean()
    trend = long.factor_trend.groupby("time.year").mean()
    assert r_squared(annual.values, trend.values) > 0.5
    slope = np.polyfit(trend.values, annual.values, 1)[0]
    assert slope == pytest.approx(0.05, rel=0.3)


def test_noise_sets_the_unexplained_variance():
    clean = make_synthetic_dataset(nlat=8, nlon=12, noise=0.0)
    noisy = make_synthetic_dataset(nlat=8, nlon=12, noise=1.0)
    fits = [explained(at(data.sst, ENSO_POLES[0]), data.factor_enso.values)
            for data in (clean, noisy)]
    assert fits[0] > 0.99 and fits[1] < 0.9


@pytest.mark.parametrize("calendar,freq,steps", [
    ("standard", "D", 1461), ("noleap", "D", 1460), ("360_day", "D", 1440),
    ("all_leap", "D", 1464), ("standard", "MS", 48), ("360_day", "MS", 48),
])
def test_calendars_and_frequencies(calendar, freq, steps):
    data = make_synthetic_dataset(calendar=calendar, freq=freq, nlat=4, nlon=4)
    assert data.time.size == steps
    assert data.time.dt.calendar == ("proleptic_gregorian" if calendar == "standard"
                                     else calendar)
    assert np.all(np.diff(data.factor_trend) > 0) and 3.9 < float(data.factor_trend[-1]) < 4.0
    assert np.isfinite(data.factor_enso).all() and np.isfinite(data.t2m).all()
    if freq == "D":
        regime = data.factor_regime.values
        assert np.count_nonzero(np.diff(regime)) < regime.size / 5


def test_write_round_trip(tmp_path):
    path = tmp_path / "synthetic.nc"
    returned = write_synthetic_dataset(path, years=1, calendar="noleap", nlat=6, nlon=8)
    assert returned == path and not list(tmp_path.glob(".*.tmp"))
    expected = make_synthetic_dataset(years=1, calendar="noleap", nlat=6, nlon=8)
    with xr.open_dataset(path) as loaded:
        xr.testing.assert_identical(loaded.load(), expected)
        assert loaded.time.dt.calendar == "noleap"


BAD_ARGUMENTS = [
    ({"years": 0}, r"`years` must be an integer >= 1; received 0"),
    ({"years": 1.5}, r"`years` must be an integer >= 1"),
    ({"nlat": 3}, r"`nlat` must be an integer >= 4"),
    ({"nlon": 2}, r"`nlon` must be an integer >= 4"),
    ({"regimes": 1}, r"`regimes` must be an integer >= 2"),
    ({"seed": -1}, r"`seed` must be an integer >= 0"),
    ({"noise": -0.1}, r"`noise` must be a finite number >= 0"),
    ({"noise": float("nan")}, r"`noise` must be a finite number >= 0"),
    ({"noise": True}, r"`noise` must be a finite number >= 0; received True"),
    ({"calendar": "martian"}, r"`calendar` must be one of standard, .*received 'martian'"),
    ({"start": "not a date"}, r"Cannot build a time axis from start='not a date'"),
    ({"freq": "fortnightly"}, r"Cannot build a time axis .*freq='fortnightly'"),
    ({"freq": "10YS"}, r"`freq`='10YS' gives 1 step\(s\) in 4 year\(s\); expected at least 2"),
]


@pytest.mark.parametrize("arguments,message", BAD_ARGUMENTS,
                         ids=[str(arguments) for arguments, _ in BAD_ARGUMENTS])
def test_bad_arguments(arguments, message):
    with pytest.raises(InputError, match=message):
        make_synthetic_dataset(**arguments)
