"""Regime statistics against hand counts, the choice of K, errors, composites from several files."""

import numpy as np
import pytest
import xarray as xr
from sklearn.metrics import adjusted_rand_score

from faconvlstm.errors import InputError
from faconvlstm.pipeline import cluster, embed
from faconvlstm.pipeline.clustering import persistence, transition_matrix, with_breaks


def embeddings_dataset(values: np.ndarray, time=None) -> xr.Dataset:
    if time is None:
        time = xr.date_range("2000-01-01", periods=len(values), freq="D", use_cftime=False)
    return xr.Dataset(
        {"embeddings": (("time", "embedding"), values.astype("float32"))}, {"time": time}
    )


def blobs(rng, sizes: list[int], spacing: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Points around well-separated centers ``(sum(sizes), 4)`` and their true blob."""
    truth = np.repeat(np.arange(len(sizes)), sizes)
    centers = spacing * np.eye(4)[: len(sizes)]
    return centers[truth] + 0.1 * rng.normal(size=(truth.size, 4)), truth


def test_persistence_is_the_mean_run_length_of_each_cluster():
    labels = np.array([0, 0, 1, 1, 1, 0, 2, 2, 0])  # runs: 0x2, 1x3, 0x1, 2x2, 0x1
    np.testing.assert_allclose(persistence(labels, 4), [4 / 3, 3, 2, 0])


def test_a_break_interrupts_a_run():
    np.testing.assert_allclose(persistence(np.array([0, 0, -1, 0, 1, 1]), 2), [1.5, 2])


def test_transition_matrix_counts_next_step_pairs_per_row():
    labels = np.array([0, 0, 1, 1, 1, 0, 2, 2, 0])
    expected = [[1 / 3, 1 / 3, 1 / 3], [1 / 3, 2 / 3, 0], [1 / 2, 0, 1 / 2]]
    np.testing.assert_allclose(transition_matrix(labels, 3), expected)


def test_no_transition_from_or_to_a_break():
    np.testing.assert_allclose(transition_matrix(np.array([0, 1, -1, 1, 0]), 2), [[0, 1], [1, 0]])


def test_a_regime_never_followed_by_a_labeled_step_has_a_row_of_zeros():
    np.testing.assert_allclose(transition_matrix(np.array([0, 0, 1]), 2), [[0.5, 0.5], [0, 0]])


def test_with_breaks_marks_every_gap_in_time():
    days = xr.date_range("2000-01-01", periods=6, freq="D").delete([2, 3])
    time = xr.DataArray(days, dims="time")
    np.testing.assert_array_equal(with_breaks(np.array([0, 1, 1, 2]), time), [0, 1, -1, 1, 2])


def test_regime_statistics_do_not_span_a_gap_in_time(rng):
    # Two winters of 30 days: regime A for 20 days then B for 10; B for 10 then A for 20.
    # Joined across the gap, the two B runs would merge into one of 20 days.
    regime = np.r_[np.zeros(20), np.ones(20), np.zeros(20)]
    values = 10.0 * regime[:, None] + 0.1 * rng.normal(size=(60, 4))
    time = xr.date_range("2000-01-01", "2001-12-31", freq="D")[np.r_[0:30, 365:395]]
    labels = cluster(embeddings_dataset(values, time), k=2).labels
    a, b = labels["label"].values[[0, 20]]
    np.testing.assert_allclose(labels["persistence"].values[[a, b]], [20, 10])
    transitions = labels["transition_probability"].values
    np.testing.assert_allclose(transitions[a, [a, b]], [38 / 39, 1 / 39])
    np.testing.assert_allclose(transitions[b, [a, b]], [1 / 19, 18 / 19])


def test_uncovered_timesteps_are_unlabeled(rng):
    values, _ = blobs(rng, [15, 15])
    values[[3, 4]] = np.nan
    result = cluster(embeddings_dataset(values), k=2)
    label = result.labels["label"]
    assert (label.values[[3, 4]] == -1).all() and (np.delete(label.values, [3, 4]) >= 0).all()
    np.testing.assert_array_equal(label.attrs["flag_values"], [0, 1])
    assert label.attrs["flag_meanings"] == "regime_0 regime_1"
    assert result.labels["frequency"].sum() == pytest.approx(1.0)
    assert result.composites is None and result.files == []


def test_k_none_picks_the_number_of_blobs_by_silhouette(rng):
    values, truth = blobs(rng, [40, 30, 50, 35])
    result = cluster(embeddings_dataset(values), k=None)
    assert result.labels.attrs["k"] == 4
    assert adjusted_rand_score(truth, result.labels["label"].values) == 1.0
    metrics = result.metrics
    assert metrics["silhouette"] > 0.9 and metrics["davies_bouldin"] < 0.1
    assert metrics["calinski_harabasz"] > 1e3


@pytest.mark.parametrize("k", [1, 20])
def test_k_out_of_range_names_the_range(rng, k):
    values, _ = blobs(rng, [10, 10])
    with pytest.raises(InputError, match=rf"k must be between 2 and 19 .*; got {k}\.$"):
        cluster(embeddings_dataset(values), k=k)


def test_too_few_embedded_timesteps_and_wrong_datasets_name_the_problem():
    with pytest.raises(InputError, match="Only 0 timesteps have an embedding"):
        cluster(embeddings_dataset(np.full((10, 4), np.nan)), k=2)
    wrong = xr.Dataset({"embeddings": (("time", "level"), np.zeros((5, 2)))})
    with pytest.raises(InputError, match=r"no 'embeddings' variable of dims \(time, embedding\)"):
        cluster(wrong, k=2)


def test_composites_from_embeddings_of_several_files(trained_run, synthetic_file, tmp_path):
    with xr.open_dataset(synthetic_file) as dataset:
        years = [tmp_path / "2000.nc", tmp_path / "2001.nc"]
        for year, path in zip(("2000", "2001"), years):
            dataset.sel(time=year).drop_encoding().to_netcdf(path)
        t2m = dataset["t2m"].load()
    winter = ["2000-12-01", "2001-01-31"]
    embed(trained_run.run_dir, [str(path) for path in years], tmp_path / "embeddings.nc", winter)
    result = cluster(tmp_path / "embeddings.nc", k=2, out=tmp_path / "labels.nc")
    assert [path.name for path in result.files] == [
        "labels.nc", "labels_composites.nc", "labels_composites.png"
    ]
    label = result.labels["label"].values
    for c in range(2):
        np.testing.assert_allclose(
            result.composites["t2m"].sel(cluster=c),
            t2m.sel(time=slice(*winter)).isel(time=label == c).mean("time"),
            rtol=1e-5,
        )
