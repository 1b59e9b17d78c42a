"""Perturbed fields: the amount of each perturbation, NaN handling, determinism, bad input."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from faconvlstm.errors import InputError
from faconvlstm.evaluation.perturbations import (
    add_noise,
    channel_std,
    drop_cells,
    drop_timesteps,
)

STEPS, LATS, LONS = 60, 6, 8


@pytest.fixture
def fields(rng) -> xr.DataArray:
    """Two channels of very different scales, a land cell (NaN at all times), and cells missing
    in one channel only."""
    values = rng.normal(size=(STEPS, LATS, LONS, 2)) * np.array([1.0, 50.0]) + np.array([0, 500])
    values[:, 2, 3, :] = np.nan
    values[5:10, 0, :, 1] = np.nan
    return xr.DataArray(
        values.astype("float32"),
        dims=("time", "lat", "lon", "channel"),
        coords={
            "time": pd.date_range("2000-01-01", periods=STEPS),
            "lat": np.linspace(-75.0, 75.0, LATS),
            "lon": np.arange(LONS) * 45.0,
            "channel": ["t2m", "z@500"],
            "units": ("channel", ["K", "m"]),
        },
    )


def test_channel_std_is_the_area_weighted_std(fields):
    weights = np.broadcast_to(
        np.cos(np.deg2rad(fields["lat"].values))[None, :, None], (STEPS, LATS, LONS)
    )
    for index in range(2):
        values = fields.values[..., index].astype("float64")
        valid = ~np.isnan(values)
        mean = np.average(values[valid], weights=weights[valid])
        expected = np.sqrt(np.average((values[valid] - mean) ** 2, weights=weights[valid]))
        assert channel_std(fields).values[index] == pytest.approx(expected, rel=1e-6)


def test_noise_has_the_requested_level_and_keeps_nan_cells(fields):
    noisy = add_noise(fields, 0.3, seed=4)
    assert noisy.dtype == np.float32 and noisy.dims == fields.dims
    np.testing.assert_array_equal(np.isnan(noisy.values), np.isnan(fields.values))
    added = (noisy - fields).values
    for index, scale in enumerate(channel_std(fields).values):
        measured = np.nanstd(added[..., index])
        assert measured == pytest.approx(0.3 * scale, rel=0.03)  # ~2800 samples: ~1.3% error


def test_noise_is_deterministic_given_the_seed(fields):
    original = fields.copy(deep=True)
    xr.testing.assert_identical(add_noise(fields, 0.1, seed=1), add_noise(fields, 0.1, seed=1))
    assert not add_noise(fields, 0.1, seed=1).equals(add_noise(fields, 0.1, seed=2))
    xr.testing.assert_equal(add_noise(fields, 0.0), fields)
    xr.testing.assert_identical(fields, original)


def test_dropped_cells_are_the_requested_fraction_in_all_channels(fields):
    dropped = drop_cells(fields, 0.25, seed=3)
    was_valid = fields.notnull().any("channel").values
    now_missing = dropped.isnull().all("channel").values
    newly_missing = was_valid & now_missing
    assert newly_missing.sum() == round(0.25 * was_valid.sum())
    # A cell is dropped in every channel or kept as it was; NaN cells stay NaN.
    kept = ~now_missing
    np.testing.assert_array_equal(dropped.values[kept], fields.values[kept])
    assert (dropped.isnull() | fields.notnull()).all()
    xr.testing.assert_identical(dropped, drop_cells(fields, 0.25, seed=3))
    assert not dropped.equals(drop_cells(fields, 0.25, seed=4))


def test_dropped_timesteps_are_the_requested_fraction_never_the_ends(fields):
    for seed in range(5):
        thinned = drop_timesteps(fields, 0.4, seed=seed)
        xr.testing.assert_identical(thinned["time"], fields["time"])
        missing = thinned.isnull().all(("lat", "lon", "channel")).values
        assert missing.sum() == round(0.4 * STEPS) and not missing[0] and not missing[-1]
        kept = ~missing
        xr.testing.assert_identical(thinned.isel(time=kept), fields.isel(time=kept))
    xr.testing.assert_identical(
        drop_timesteps(fields, 0.4, seed=7), drop_timesteps(fields, 0.4, seed=7)
    )
    xr.testing.assert_identical(drop_timesteps(fields, 0.0), fields)


def test_bad_arguments_are_refused(fields):
    for level in (-0.1, float("nan"), "0.1", True):
        with pytest.raises(InputError, match="noise level must be a finite number >= 0"):
            add_noise(fields, level)
    for fraction in (1.0, -0.1, 2, None):
        with pytest.raises(InputError, match=r"fraction to drop must be a number in \[0, 1\)"):
            drop_cells(fields, fraction)
        with pytest.raises(InputError, match=r"fraction to drop must be a number in \[0, 1\)"):
            drop_timesteps(fields, fraction)
    with pytest.raises(InputError, match="Cannot drop 2 of 3 timesteps"):
        drop_timesteps(fields.isel(time=slice(3)), 0.6)
    with pytest.raises(InputError, match="dims"):
        add_noise(fields.transpose("lat", "time", "lon", "channel"), 0.1)
