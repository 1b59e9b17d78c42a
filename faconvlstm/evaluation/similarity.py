"""Comparing representations of the same samples: linear CKA and cluster agreement.

These measure stability (embeddings of models trained with different seeds) and robustness
(embeddings of clean and perturbed inputs): both compare two representations row by row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import adjusted_rand_score

from faconvlstm.errors import InputError


def _representation(values: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(values, dtype="float64")
    if values.ndim != 2 or len(values) < 2:
        raise InputError(
            f"Expected {name} as (N, d) with N >= 2 samples; got shape {values.shape}."
        )
    if not np.isfinite(values).all():
        raise InputError(f"{name} has NaN or infinite values; drop those rows first.")
    return values


def _paired(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = _representation(x, "x"), _representation(y, "y")
    if len(x) != len(y):
        raise InputError(
            f"x and y must hold the same N samples; got shapes {x.shape} and {y.shape}."
        )
    return x, y


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear centered kernel alignment of ``x (N, d1)`` and ``y (N, d2)``, in [0, 1].

    Kornblith et al. (2019): ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` with columns centered.
    Invariant to orthogonal transforms and isotropic scaling of either representation, not to
    arbitrary linear maps. Row ``i`` of both must be the same sample.
    """
    x, y = _paired(x, y)
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    norm_x, norm_y = np.linalg.norm(x.T @ x), np.linalg.norm(y.T @ y)
    if norm_x == 0 or norm_y == 0:
        raise InputError("A representation is constant across samples; CKA is undefined.")
    return float(np.linalg.norm(y.T @ x) ** 2 / (norm_x * norm_y))


def cka_matrix(representations: Sequence[np.ndarray]) -> np.ndarray:
    """Linear CKA between every pair of representations of the same samples. ``(k, k)``."""
    count = len(representations)
    matrix = np.eye(count)
    for i in range(count):
        for j in range(i + 1, count):
            matrix[i, j] = matrix[j, i] = linear_cka(representations[i], representations[j])
    return matrix


def clustering_agreement(labels_a: np.ndarray, labels_b: np.ndarray) -> float:
    """Adjusted Rand index of two labelings of the same samples (1 same partition, ~0 chance).

    Positions where either label is negative (``-1``: no label) are left out.
    """
    labels_a, labels_b = np.asarray(labels_a), np.asarray(labels_b)
    if labels_a.ndim != 1 or labels_a.shape != labels_b.shape:
        raise InputError(
            f"Expected two (N,) labelings of the same samples; got shapes {labels_a.shape} and "
            f"{labels_b.shape}."
        )
    labeled = (labels_a >= 0) & (labels_b >= 0)
    if not labeled.any():
        raise InputError("No sample is labeled in both labelings (all have a negative label).")
    return float(adjusted_rand_score(labels_a[labeled], labels_b[labeled]))
