"""The EOF baseline: planted patterns and regimes recovered, masks, output format, bad input."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from sklearn.metrics import adjusted_rand_score

from faconvlstm.errors import InputError
from faconvlstm.evaluation.eof import eof_embeddings, eof_regimes, separated_modes

STEPS, LATS, LONS, CHANNELS = 240, 10, 12, 2
LAT = np.linspace(-67.5, 67.5, LATS)
AMPLITUDE_STDS = np.array([3.0, 2.0, 1.2])
LAND = (slice(3, 5), slice(4, 7))
CENTROIDS = np.array([[4.0, 0.0, 0.0], [-2.0, 3.5, 0.0], [-2.0, -3.5, 2.5]])


def as_fields(values: np.ndarray, start: str = "2000-01-01") -> xr.DataArray:
    return xr.DataArray(
        values.astype("float32"),
        dims=("time", "lat", "lon", "channel"),
        coords={
            "time": pd.date_range(start, periods=len(values)),
            "lat": LAT,
            "lon": np.arange(LONS) * 30.0,
            "channel": ["t2m", "z@500"],
            "units": ("channel", ["1", "1"]),
        },
    )


def planted_patterns(rng) -> np.ndarray:
    """3 field patterns ``(3, lat, lon, channel)``, orthonormal after sqrt(cos(lat)) weighting.

    They are zero over the land cells, so masking those cells keeps them orthonormal.
    """
    weights = np.broadcast_to(np.sqrt(np.cos(np.deg2rad(LAT)))[:, None, None], (LATS, LONS, 2))
    sea = np.ones((LATS, LONS, CHANNELS), dtype=bool)
    sea[LAND] = False
    basis, _ = np.linalg.qr(rng.normal(size=(sea.sum(), 3)))
    patterns = np.zeros((3, LATS, LONS, CHANNELS))
    patterns[:, sea] = basis.T / weights[sea]
    return patterns


def synthetic_fields(rng, amplitudes: np.ndarray, noise: float = 0.05) -> xr.DataArray:
    values = np.einsum("tm,mxyc->txyc", amplitudes, planted_patterns(np.random.default_rng(7)))
    values = values + noise * rng.normal(size=values.shape)
    values[(slice(None), *LAND)] = np.nan
    return as_fields(values)


def uncorrelated_amplitudes(rng, steps: int = STEPS) -> np.ndarray:
    """Centered, mutually uncorrelated series with standard deviations AMPLITUDE_STDS."""
    series = rng.normal(size=(steps, 3))
    orthonormal, _ = np.linalg.qr(series - series.mean(axis=0))
    return orthonormal * np.sqrt(steps) * AMPLITUDE_STDS


def test_leading_components_recover_the_planted_amplitudes(rng):
    amplitudes = uncorrelated_amplitudes(rng)
    fields = synthetic_fields(rng, amplitudes)
    result = eof_embeddings(fields, fields, n_modes=3)
    components = result["embeddings"].values
    for mode in range(3):
        correlation = np.corrcoef(components[:, mode], amplitudes[:, mode])[0, 1]
        assert abs(correlation) > 0.99
    np.testing.assert_allclose(components.std(axis=0), AMPLITUDE_STDS, rtol=0.03)
    ratios = result["explained_variance_ratio"].values
    assert np.all(np.diff(ratios) < 0) and 0.9 < ratios.sum() <= 1.0


def test_components_of_new_times_use_the_training_patterns(rng):
    train = synthetic_fields(rng, uncorrelated_amplitudes(rng))
    amplitudes = rng.normal(size=(50, 3)) * AMPLITUDE_STDS
    test = synthetic_fields(rng, amplitudes, noise=0.0).assign_coords(
        time=pd.date_range("2010-01-01", periods=50)
    )
    components = eof_embeddings(train, test, n_modes=3)["embeddings"].values
    for mode in range(3):
        assert abs(np.corrcoef(components[:, mode], amplitudes[:, mode])[0, 1]) > 0.99


def test_output_has_the_format_of_embed(rng):
    fields = synthetic_fields(rng, uncorrelated_amplitudes(rng))
    result = eof_embeddings(fields, fields.isel(time=slice(10, 30)), n_modes=4)
    assert result["embeddings"].dims == ("time", "embedding")
    assert result["embeddings"].shape == (20, 4)
    xr.testing.assert_identical(result["time"], fields["time"].isel(time=slice(10, 30)))
    assert result["eofs"].dims == ("embedding", "lat", "lon", "channel")
    assert result["eofs"].shape == (4, LATS, LONS, CHANNELS)
    assert result["explained_variance_ratio"].dims == ("embedding",)
    assert result.attrs["training_steps"] == STEPS


def test_modes_within_their_sampling_error_of_a_neighbour_are_not_separated():
    # Gaps 0.2, 0.05 and 0.2 against errors l * sqrt(2 / 50) = 0.2 l: 0.1, 0.06, 0.05, 0.01.
    spectrum = np.array([0.5, 0.3, 0.25, 0.05])
    np.testing.assert_array_equal(separated_modes(spectrum, 50), [True, False, False, True])
    # Four times the samples halve the errors: 0.03 < 0.05, every mode stands apart.
    np.testing.assert_array_equal(separated_modes(spectrum, 200), [True] * 4)
    with pytest.raises(InputError, match="samples"):
        separated_modes(spectrum, 0)


def test_land_cells_are_left_out_and_missing_values_filled(rng):
    fields = synthetic_fields(rng, uncorrelated_amplitudes(rng))
    holed = fields.copy()
    holed[17, 0, 0, 1] = np.nan  # NaN once in training: that feature is left out too
    result = eof_embeddings(holed, fields, n_modes=3)
    excluded = np.zeros((LATS, LONS, CHANNELS), dtype=bool)
    excluded[LAND] = True
    excluded[0, 0, 1] = True
    for pattern in result["eofs"].values:
        np.testing.assert_array_equal(np.isnan(pattern), excluded)
    assert np.isfinite(result["embeddings"].values).all()

    # A missing value at transform time counts as the training mean of its feature.
    gappy = fields.copy()
    gappy[3, 5, 5, 0] = np.nan
    filled = fields.copy()
    filled[3, 5, 5, 0] = fields[:, 5, 5, 0].astype("float64").mean()
    np.testing.assert_allclose(
        eof_embeddings(fields, gappy, 3)["embeddings"].values,
        eof_embeddings(fields, filled, 3)["embeddings"].values,
        atol=1e-5,
    )


def test_regimes_recover_planted_clusters(rng):
    truth = rng.integers(0, 3, size=STEPS)
    amplitudes = CENTROIDS[truth] + 0.6 * rng.normal(size=(STEPS, 3))
    fields = synthetic_fields(rng, amplitudes)
    labels = eof_regimes(fields, fields, n_modes=3, k=3, seed=0)
    assert labels.shape == (STEPS,)
    assert adjusted_rand_score(truth, labels) > 0.9
    np.testing.assert_array_equal(labels, eof_regimes(fields, fields, n_modes=3, k=3, seed=0))


def test_bad_input_is_refused(rng):
    fields = synthetic_fields(rng, uncorrelated_amplitudes(rng, steps=20))
    with pytest.raises(InputError, match=r"n_modes` is 25, more than the data allow \(19\)"):
        eof_embeddings(fields, fields, n_modes=25)
    with pytest.raises(InputError, match="n_modes` must be a positive integer"):
        eof_embeddings(fields, fields, n_modes=0)
    with pytest.raises(InputError, match="lon axis differs"):
        eof_embeddings(fields, fields.isel(lon=slice(1, None)), n_modes=2)
    with pytest.raises(InputError, match="No cell and channel is valid"):
        eof_embeddings(fields.where(rng.random(fields.shape) < 0.5), fields, n_modes=2)
    with pytest.raises(InputError, match="no valid value"):
        eof_embeddings(fields.where(fields["lat"] > 100), fields, n_modes=2)
    with pytest.raises(InputError, match="`k` is 21, more than the data allow"):
        eof_regimes(fields, fields, n_modes=2, k=21)
