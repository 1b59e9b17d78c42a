"""Preprocessing steps against hand computations, round trips, laziness and error messages."""

import dask
import dask.array
import numpy as np
import pytest
import xarray as xr

from faconvlstm.data.preprocessing import (
    Anomalies,
    Detrend,
    Log1p,
    Preprocessor,
    Standardize,
    area_weights,
    make_preprocessor,
)
from faconvlstm.errors import InputError

LAT = np.array([-60.0, 0.0, 45.0])
LON = np.array([0.0, 120.0, 240.0, 300.0])
CHANNELS = ["t2m", "tp"]
UNITS = ["K", "kg m-2"]


def make_fields(values, time, channels=CHANNELS, units=UNITS):
    """Canonical fields from values (time, lat, lon, channel)."""
    return xr.DataArray(
        np.asarray(values, dtype="float32"),
        dims=("time", "lat", "lon", "channel"),
        coords={"time": time, "lat": LAT, "lon": LON, "channel": list(channels),
                "units": ("channel", list(units))},
    )


def daily(start, years, calendar="standard"):
    first = xr.date_range(start, periods=1, calendar=calendar, use_cftime=calendar != "standard")
    days = 360 if calendar == "360_day" else 365
    return xr.date_range(first[0], periods=days * years, freq="D", calendar=calendar,
                         use_cftime=calendar != "standard")


def hand_year_fraction(time):
    """Elapsed days since 1 January over the year's length in the calendar (daily stamps)."""
    time = xr.DataArray(time, dims="time")
    return ((time.dt.dayofyear - 1) / time.dt.days_in_year).values


def seasonal_fields(time, rng):
    """Mean plus two harmonics of the year fraction, different per cell and channel."""
    shape = (1, LAT.size, LON.size, len(CHANNELS))
    mean, a1, b2 = (rng.uniform(-3, 3, shape) for _ in range(3))
    phase = 2 * np.pi * hand_year_fraction(time)[:, None, None, None]
    return mean + a1 * np.cos(phase) + b2 * np.sin(2 * phase)


def realistic_fields(rng, calendar="noleap", years=2):
    """Seasonal cycle, trend and noise; non-negative 'tp'; a land cell that is always NaN."""
    time = daily("2001-01-01", years, calendar)
    values = 10 + seasonal_fields(time, rng) + rng.normal(0, 1, (time.size, 3, 4, 2))
    values[..., 1] = np.exp(values[..., 1] / 5)
    values[:, 1, 2, :] = np.nan
    return make_fields(values, time)


def test_area_weights_are_cosine_latitude_clipped_at_zero():
    np.testing.assert_allclose(area_weights([-60.0, 0.0, 60.0]), [0.5, 1.0, 0.5])
    assert area_weights([90.0 + 1e-9])[0] == 0.0
    with pytest.raises(InputError, match=r"Latitudes must lie in \[-90, 90\].*120"):
        area_weights([0.0, 120.0])


def test_standardize_matches_hand_computed_area_weighted_statistics(rng):
    values = rng.normal(5, 2, (6, 3, 4, 2))
    values[:, 0, 1, 0] = np.nan
    values[2, 2, 3, 1] = np.nan
    fields = make_fields(values, daily("2000-01-01", 1)[:6])
    step = Standardize().fit(fields)

    x = fields.values.astype("float64")
    weights = np.broadcast_to(np.cos(np.deg2rad(LAT))[None, :, None, None], x.shape)
    valid = ~np.isnan(x)
    for c in range(2):
        w, v = weights[..., c][valid[..., c]], x[..., c][valid[..., c]]
        mean = np.sum(w * v) / np.sum(w)
        std = np.sqrt(np.sum(w * (v - mean) ** 2) / np.sum(w))
        assert step.mean[c] == pytest.approx(mean, rel=1e-12)
        assert step.std[c] == pytest.approx(std, rel=1e-12)

    out = step.transform(fields)
    assert out.dims == fields.dims and out.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(out.values), ~valid)
    expected = (x - step.mean) / step.std
    np.testing.assert_allclose(out.values, expected, rtol=1e-5, atol=1e-6)


def test_standardize_rejects_a_constant_channel(rng):
    values = rng.normal(size=(4, 3, 4, 2))
    values[..., 1] = 273.15
    with pytest.raises(InputError, match="Channel 'tp' has zero standard deviation"):
        Standardize().fit(make_fields(values, daily("2000-01-01", 1)[:4]))


@pytest.mark.parametrize("calendar", ["standard", "noleap", "360_day"])
@pytest.mark.parametrize("missing", ["static", "scattered"])
def test_anomalies_remove_a_seasonal_cycle(calendar, missing, rng):
    time = daily("2001-01-01", 3, calendar)
    values = seasonal_fields(time, rng)
    values[:, 0, 0, :] = np.nan
    if missing == "scattered":
        values[rng.random(time.size) < 0.3, 2, 1, 0] = np.nan
    fields = make_fields(values, time)
    train, later = fields.isel(time=slice(0, 500)), fields.isel(time=slice(500, None))

    step = Anomalies(harmonics=3).fit(train)
    for part in (train, later):
        out = step.transform(part).values
        np.testing.assert_array_equal(np.isnan(out), np.isnan(part.values))
        np.testing.assert_allclose(np.nan_to_num(out), 0.0, atol=2e-5)


def test_anomaly_coefficients_keep_their_saved_order(rng):
    """1, cos(2 pi k phi) for k = 1..K, then sin(2 pi k phi): the order saved runs hold."""
    time = daily("2001-01-01", 2, "noleap")
    shape = (1, LAT.size, LON.size, len(CHANNELS))
    mean, a1, b2 = (rng.uniform(-3, 3, shape) for _ in range(3))
    phase = 2 * np.pi * hand_year_fraction(time)[:, None, None, None]
    values = mean + a1 * np.cos(phase) + b2 * np.sin(2 * phase)
    step = Anomalies(harmonics=2).fit(make_fields(values, time))
    zero = np.zeros(shape)
    expected = np.concatenate([mean, a1, zero, zero, b2])
    np.testing.assert_allclose(np.moveaxis(step.coefficients, -1, 0), expected, atol=1e-5)


@pytest.mark.parametrize("harmonics", [-1, 1.5, True])
def test_anomalies_need_a_non_negative_integer_number_of_harmonics(harmonics):
    with pytest.raises(InputError, match="`harmonics` must be a non-negative integer"):
        Anomalies(harmonics)
    assert Anomalies(np.int64(2)).harmonics == 2


def test_anomalies_differ_from_a_fit_with_the_wrong_calendar(rng):
    time = daily("2001-01-01", 2, "360_day")
    fields = make_fields(seasonal_fields(time, rng), time)
    as_standard = fields.assign_coords(time=daily("2001-01-01", 2)[: time.size])
    out = Anomalies(harmonics=3).fit(as_standard).transform(as_standard)
    assert np.abs(out.values).max() > 0.05


def test_detrend_removes_a_linear_trend_and_extrapolates(rng):
    time = xr.date_range("2000-01-01", "2004-12-31", freq="D")
    years = np.asarray(time.year) + hand_year_fraction(time)
    slope = rng.uniform(-2, 2, (1, 3, 4, 2))
    values = 7.0 + slope * (years - 2000.0)[:, None, None, None]
    values[:, 2, 0, 1] = np.nan
    fields = make_fields(values, time)
    train = fields.sel(time=slice("2000", "2001"))

    step = Detrend().fit(train)
    assert step.origin == 2000.0
    np.testing.assert_allclose(step.coefficients[..., 1], np.where(
        np.isnan(values[0]), np.nan, slope[0]), rtol=1e-5)
    out = step.transform(fields.sel(time=slice("2003", "2004"))).values
    np.testing.assert_array_equal(np.isnan(out[:, 2, 0, 1]), True)
    np.testing.assert_allclose(np.nan_to_num(out), 0.0, atol=5e-5)


def test_log1p_clips_negative_values_then_transforms():
    values = np.zeros((4, 3, 4, 2))
    values[:, 0, 0, 1] = [-0.01, 0.0, 1.0, np.e - 1]
    values[:, 0, 0, 0] = [-5.0, 1.0, 2.0, np.nan]
    fields = make_fields(values, daily("2000-01-01", 1)[:4])
    out = Log1p(["tp"]).fit(fields).transform(fields)
    assert out.dtype == np.float32 and out.dims == fields.dims
    out = out.values
    np.testing.assert_allclose(out[:, 0, 0, 1], [0.0, 0.0, np.log(2.0), 1.0], rtol=1e-6)
    np.testing.assert_array_equal(out[:, 0, 0, 0], [-5.0, 1.0, 2.0, np.nan])
    with pytest.raises(InputError, match=r"log1p channels \['sst'\] are not in the fields"):
        Log1p(["tp", "sst"]).fit(fields)


def full_chain():
    return make_preprocessor(log1p=["tp"], detrend=True, anomalies=True, harmonics=2)


def test_make_preprocessor_orders_the_steps():
    assert [step.name for step in full_chain().steps] == [
        "log1p", "detrend", "anomalies", "standardize"]
    assert [step.name for step in make_preprocessor().steps] == ["standardize"]


def test_save_load_round_trip(tmp_path, rng):
    fields = realistic_fields(rng)
    preprocessor = full_chain().fit(fields)
    path = tmp_path / "preprocessor.nc"
    preprocessor.save(path)
    loaded = Preprocessor.load(path)

    assert loaded.channels == CHANNELS and loaded.units == UNITS
    assert [step.name for step in loaded.steps] == [step.name for step in preprocessor.steps]
    for original, restored in zip(preprocessor.steps, loaded.steps):
        assert original.state().keys() == restored.state().keys()
        for key, value in original.state().items():
            np.testing.assert_array_equal(restored.state()[key], value)
    np.testing.assert_array_equal(loaded.transform(fields).values,
                                  preprocessor.transform(fields).values)
    assert [p.name for p in tmp_path.iterdir()] == ["preprocessor.nc"]


def test_inverse_transform_recovers_the_fields(rng):
    fields = realistic_fields(rng, calendar="360_day")
    preprocessor = full_chain().fit(fields.isel(time=slice(0, 400)))
    model_space = preprocessor.transform(fields)
    assert abs(float(model_space.mean())) < 0.2
    restored = preprocessor.inverse_transform(model_space)
    np.testing.assert_allclose(restored.values, fields.values, rtol=1e-4, atol=1e-4)


def test_transform_checks_units_and_channels(rng):
    fields = realistic_fields(rng)
    preprocessor = make_preprocessor().fit(fields)
    other_units = fields.assign_coords(units=("channel", ["degC", "kg m-2"]))
    with pytest.raises(InputError, match="Channel 't2m' has units 'degC'; expected 'K'"):
        preprocessor.transform(other_units)
    swapped = fields.isel(channel=[1, 0])
    with pytest.raises(InputError, match=r"have channels \['tp', 't2m'\]; expected channels "
                                         r"\['t2m', 'tp'\]"):
        preprocessor.transform(swapped)
    with pytest.raises(InputError, match="lack a `units` coordinate"):
        preprocessor.transform(fields.drop_vars("units"))


def test_per_cell_steps_check_the_grid(rng):
    fields = realistic_fields(rng)
    step = Anomalies().fit(fields)
    with pytest.raises(InputError, match="lat axis .* differs from the fitted one"):
        step.transform(fields.assign_coords(lat=LAT + 1.0))


def test_dask_input_stays_lazy_in_transform(rng):
    fields = realistic_fields(rng)
    lazy = fields.copy(data=dask.array.from_array(fields.values, chunks=(100, 3, 4, 2)))
    eager_result = full_chain().fit(fields).transform(fields)
    preprocessor = full_chain().fit(lazy)

    def refuse(*args, **kwargs):
        raise AssertionError("transform computed the dask graph")

    with dask.config.set(scheduler=refuse):
        out = preprocessor.transform(lazy)
        restored = preprocessor.inverse_transform(out)
    assert out.chunks is not None and restored.chunks is not None
    np.testing.assert_allclose(out.values, eager_result.values, rtol=1e-4, atol=1e-4)


def test_load_rejects_missing_unreadable_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="No preprocessor file"):
        Preprocessor.load(tmp_path / "absent.nc")
    text = tmp_path / "text.nc"
    text.write_text("not netcdf")
    with pytest.raises(InputError, match="Cannot read the preprocessor file"):
        Preprocessor.load(text)
    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"x": ("a", [1.0])}).to_netcdf(foreign)
    with pytest.raises(InputError, match="is not a faconvlstm preprocessor file"):
        Preprocessor.load(foreign)


def test_load_rejects_a_file_with_a_missing_state(tmp_path, rng):
    path = tmp_path / "preprocessor.nc"
    make_preprocessor(anomalies=True).fit(realistic_fields(rng)).save(path)
    broken = tmp_path / "broken.nc"
    xr.load_dataset(path).drop_vars("step0_coefficients").to_netcdf(broken)
    with pytest.raises(InputError, match=r"The state of step 'anomalies' lacks \['coefficients'\]"):
        Preprocessor.load(broken)


def test_unfitted_use_is_refused(rng):
    with pytest.raises(InputError, match="The 'detrend' step is not fitted"):
        Detrend().transform(realistic_fields(rng))
    with pytest.raises(InputError, match="The preprocessor is not fitted"):
        make_preprocessor().save("unused.nc")
