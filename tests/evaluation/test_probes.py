"""Linear probes: what they recover, what they must not, and how they refuse bad input."""

import re

import numpy as np
import pytest
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from faconvlstm.evaluation.probes import RIDGE_ALPHAS, one_hot, probe_r2, seasonal_features

STEPS = 400


def red_noise(rng, shape, coefficient: float = 0.9) -> np.ndarray:
    """AR(1) series along the first axis: autocorrelated like daily climate data."""
    values = rng.normal(size=shape)
    for step in range(1, len(values)):
        values[step] += coefficient * values[step - 1]
    return values


def test_a_linearly_embedded_factor_is_recovered(rng):
    factor, others = red_noise(rng, STEPS), red_noise(rng, (STEPS, 2))
    mixing = rng.normal(size=(3, 6))
    features = np.column_stack([factor, others]) @ mixing + 0.05 * rng.normal(size=(STEPS, 6))
    assert probe_r2(features, factor) > 0.98


def test_independent_noise_is_not(rng):
    assert probe_r2(red_noise(rng, (STEPS, 6)), red_noise(rng, STEPS)) < 0.05


def test_blocked_folds_stop_the_probe_interpolating_between_neighboring_steps(rng):
    # Features that only say *when* a step is (bumps along time, independent of the target):
    # shuffled folds let a probe read a random walk off its neighbors, blocked folds do not.
    target = np.cumsum(rng.normal(size=STEPS))
    days, centers = np.arange(STEPS), np.arange(0, STEPS, 10)
    features = np.exp(-0.5 * ((days[:, None] - centers) / 10.0) ** 2)
    features += 0.05 * rng.normal(size=features.shape)
    assert probe_r2(features, target) < 0.3

    shuffled = cross_val_predict(
        make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS)), features, target,
        cv=KFold(5, shuffle=True, random_state=0),
    )
    assert r2_score(target, shuffled) > 0.85


def test_a_one_hot_target_scores_the_variance_weighted_r2(rng):
    regime = np.repeat(rng.integers(0, 3, size=STEPS // 10), 10)
    indicators = one_hot(regime)
    assert indicators.shape == (STEPS, 3)
    np.testing.assert_array_equal(indicators.argmax(axis=1), regime)
    features = indicators @ rng.normal(size=(3, 4)) + 0.05 * rng.normal(size=(STEPS, 4))
    assert probe_r2(features, indicators) > 0.95
    assert probe_r2(rng.normal(size=(STEPS, 4)), indicators) < 0.05


def test_seasonal_features_are_the_sine_and_cosine_harmonics():
    features = seasonal_features(np.array([0.0, 0.25]), harmonics=2)
    expected = [[1, 1, 0, 0], [0, -1, 1, 0]]  # cos 1, cos 2, sin 1, sin 2
    np.testing.assert_allclose(features, expected, atol=1e-12)


def test_the_probe_floor_does_not_depend_on_the_order_of_its_columns(rng):
    fraction = rng.uniform(size=STEPS)
    target = np.cos(2 * np.pi * fraction) + 0.5 * np.sin(4 * np.pi * fraction)
    target = target + 0.3 * rng.normal(size=STEPS)
    features = seasonal_features(fraction)
    interleaved = features.reshape(STEPS, 2, 3).transpose(0, 2, 1).reshape(STEPS, 6)
    assert probe_r2(features, target) == pytest.approx(probe_r2(interleaved, target), abs=1e-9)


@pytest.mark.parametrize(
    ("features_shape", "target_shape"),
    [
        ((10, 3), (9,)),
        ((10,), (10,)),
        ((10, 3, 1), (10,)),
        ((10, 3), (11, 2)),
        ((10, 3), (10, 2, 2)),
    ],
)
def test_mismatched_shapes_name_both(features_shape, target_shape):
    shapes = f"got {features_shape} and {target_shape}."
    with pytest.raises(ValueError, match=r"features \(N, d\) .*" + re.escape(shapes)):
        probe_r2(np.zeros(features_shape), np.zeros(target_shape))


@pytest.mark.parametrize("where", ["features", "target"])
def test_nan_is_refused(rng, where):
    features, target = rng.normal(size=(20, 3)), rng.normal(size=20)
    (features if where == "features" else target)[5] = np.nan
    with pytest.raises(ValueError, match="must be finite; drop NaN rows first"):
        probe_r2(features, target)
