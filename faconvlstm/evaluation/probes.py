"""Linear probes: how much of a known signal a linear read-out of the embeddings recovers."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from faconvlstm.data.calendar import seasonal_harmonics

RIDGE_ALPHAS = np.logspace(-3, 3, 13)


def probe_r2(features: np.ndarray, target: np.ndarray, folds: int = 5) -> float:
    """Out-of-fold R^2 of a ridge probe ``features (N, d) -> target (N,)`` or ``(N, m)``.

    The folds are contiguous blocks of time (no shuffling): daily data are autocorrelated,
    and shuffled folds would let the probe interpolate between neighboring days. A
    multi-column target (e.g. a one-hot regime) scores the variance-weighted R^2.
    """
    features = np.asarray(features, dtype="float64")
    target = np.asarray(target, dtype="float64")
    if features.ndim != 2 or target.ndim not in (1, 2) or len(features) != len(target):
        raise ValueError(
            f"Expected features (N, d) and a target (N,) or (N, m); got {features.shape} and "
            f"{target.shape}."
        )
    if not (np.isfinite(features).all() and np.isfinite(target).all()):
        raise ValueError("The probe's features and target must be finite; drop NaN rows first.")
    probe = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))
    predicted = cross_val_predict(probe, features, target, cv=KFold(folds, shuffle=False))
    return float(r2_score(target, predicted, multioutput="variance_weighted"))


def one_hot(labels: np.ndarray) -> np.ndarray:
    """``(N,)`` integer labels to ``(N, n_labels)`` indicators."""
    values = np.unique(labels)
    return (np.asarray(labels)[:, None] == values[None, :]).astype("float64")


def seasonal_features(year_fraction: np.ndarray, harmonics: int = 3) -> np.ndarray:
    """The probe floor: :func:`~faconvlstm.data.calendar.seasonal_harmonics` of the year
    fractions, ``cos(2 pi k phi)`` then ``sin(2 pi k phi)``, ``k = 1..K``. ``(N, 2K)``."""
    return seasonal_harmonics(year_fraction, harmonics)
