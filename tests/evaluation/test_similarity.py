"""CKA and cluster agreement: their invariances, a direct computation, bad input."""

import numpy as np
import pytest
from scipy.stats import special_ortho_group

from faconvlstm.errors import InputError
from faconvlstm.evaluation.similarity import cka_matrix, clustering_agreement, linear_cka


def kernel_cka(x: np.ndarray, y: np.ndarray) -> float:
    """CKA from HSIC of the centered Gram matrices: tr(KHLH) / sqrt(tr(KHKH) tr(LHLH))."""
    centring = np.eye(len(x)) - 1.0 / len(x)
    gram_x, gram_y = centring @ x @ x.T @ centring, centring @ y @ y.T @ centring
    return np.sum(gram_x * gram_y) / np.sqrt(np.sum(gram_x * gram_x) * np.sum(gram_y * gram_y))


@pytest.fixture
def related(rng):
    """Two representations of 200 samples sharing a 3-dimensional signal."""
    signal = rng.normal(size=(200, 3))
    x = signal @ rng.normal(size=(3, 5)) + 0.5 * rng.normal(size=(200, 5))
    y = signal @ rng.normal(size=(3, 4)) + 0.5 * rng.normal(size=(200, 4))
    return x, y


def test_cka_of_identical_representations_is_one(related):
    assert linear_cka(related[0], related[0]) == pytest.approx(1.0)


def test_cka_matches_the_kernel_space_computation(related, rng):
    x, y = related
    assert linear_cka(x, y) == pytest.approx(kernel_cka(x, y), rel=1e-10)
    x, y = rng.normal(size=(50, 6)), rng.normal(size=(50, 2))
    assert linear_cka(x, y) == pytest.approx(kernel_cka(x, y), rel=1e-10)


def test_cka_is_invariant_to_rotation_isotropic_scaling_and_shift(related):
    x, y = related
    reference = linear_cka(x, y)
    rotation = special_ortho_group.rvs(5, random_state=1)
    assert linear_cka(7.5 * x @ rotation + 3.0, y) == pytest.approx(reference, rel=1e-10)
    assert linear_cka(x, -0.01 * y) == pytest.approx(reference, rel=1e-10)


def test_cka_is_not_invariant_to_non_isotropic_scaling(related):
    x, y = related
    stretched = x * np.array([1.0, 10.0, 1.0, 0.1, 1.0])
    assert abs(linear_cka(stretched, y) - linear_cka(x, y)) > 0.02
    assert linear_cka(stretched, x) < 0.95


def test_cka_of_independent_representations_is_low(rng):
    assert linear_cka(rng.normal(size=(2000, 4)), rng.normal(size=(2000, 4))) < 0.2


def test_cka_refuses_nan_mismatched_and_constant_input(related):
    x, y = related
    with_nan = x.copy()
    with_nan[3, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        linear_cka(with_nan, y)
    with pytest.raises(InputError, match=r"same N samples.*\(200, 5\) and \(199, 4\)"):
        linear_cka(x, y[:-1])
    with pytest.raises(InputError, match=r"\(N, d\)"):
        linear_cka(x[:, 0], y)
    with pytest.raises(InputError, match="constant"):
        linear_cka(np.ones((200, 2)), y)


def test_cka_matrix_is_symmetric_with_unit_diagonal(related, rng):
    x, y = related
    representations = [x, y, rng.normal(size=(200, 2))]
    matrix = cka_matrix(representations)
    assert matrix.shape == (3, 3)
    np.testing.assert_allclose(matrix, matrix.T)
    np.testing.assert_allclose(np.diag(matrix), 1.0)
    assert matrix[0, 1] == pytest.approx(linear_cka(x, y))


def test_agreement_is_one_for_relabeled_clusters(rng):
    labels = rng.integers(0, 4, size=300)
    relabeled = np.array([2, 0, 3, 1])[labels]
    assert clustering_agreement(labels, relabeled) == pytest.approx(1.0)


def test_agreement_of_random_labels_is_near_zero(rng):
    agreement = clustering_agreement(rng.integers(0, 4, size=2000), rng.integers(0, 4, size=2000))
    assert abs(agreement) < 0.02


def test_agreement_ignores_unlabeled_positions(rng):
    labels = rng.integers(0, 3, size=100)
    other = labels.copy()
    other[:20] = (labels[:20] + 1) % 3  # disagreements, hidden below by -1 in either labeling
    labels_with_gaps = labels.copy()
    labels_with_gaps[:10] = -1
    other[10:20] = -1
    assert clustering_agreement(labels_with_gaps, other) == pytest.approx(1.0)
    assert clustering_agreement(labels, np.where(np.arange(100) < 20, -1, other)) == 1.0
    with pytest.raises(InputError, match="No sample is labeled"):
        clustering_agreement(-np.ones(5, dtype=int), np.zeros(5, dtype=int))
    with pytest.raises(InputError, match=r"\(5,\) and \(4,\)"):
        clustering_agreement(np.zeros(5, dtype=int), np.zeros(4, dtype=int))
