"""``cluster``: regimes from embeddings with KMeans, their statistics, composites and maps."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import xarray as xr
from sklearn.cluster import KMeans
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

from faconvlstm.data.calendar import contiguous_segments
from faconvlstm.data.io import Source
from faconvlstm.errors import InputError
from faconvlstm.data.storage import write_netcdf
from faconvlstm.pipeline.embedding import EMBEDDING_VARIABLE, EMBEDDINGS_TITLE
from faconvlstm.pipeline.plots import plot_composites
from faconvlstm.pipeline.runs import DataSelection, read_run

#: Silhouette is quadratic in the samples; longer series are scored on a fixed random subset.
SILHOUETTE_SAMPLES = 5000
#: K tried when the user leaves it to the silhouette criterion.
AUTO_K = range(2, 9)
#: KMeans restarts from different centroids; the best of them is kept.
KMEANS_STARTS = 10


def kmeans(k: int, seed: int = 0) -> KMeans:
    """The KMeans estimator every regime of the package comes from: ``k`` clusters,
    :data:`KMEANS_STARTS` starts, seeded by ``seed`` (unfitted)."""
    return KMeans(k, n_init=KMEANS_STARTS, random_state=seed)


@dataclasses.dataclass
class ClusterResult:
    """Labels and statistics (``labels``), composites in physical units, and written files."""

    labels: xr.Dataset
    composites: xr.Dataset | None
    files: list[Path]

    @property
    def metrics(self) -> dict[str, float]:
        keys = ("silhouette", "davies_bouldin", "calinski_harabasz")
        return {key: float(self.labels.attrs[key]) for key in keys}


def _open_embeddings(embeddings: str | os.PathLike | xr.Dataset | xr.DataArray) -> xr.Dataset:
    if isinstance(embeddings, xr.DataArray):
        embeddings = embeddings.rename(EMBEDDING_VARIABLE).to_dataset().assign_attrs(
            embeddings.attrs
        )
    if isinstance(embeddings, xr.Dataset):
        dataset, name = embeddings, "The embeddings"
    else:
        path = Path(embeddings)
        if not path.is_file():
            raise FileNotFoundError(f"Embeddings file '{path}' does not exist.")
        try:
            dataset = xr.load_dataset(path)
        except (OSError, ValueError) as error:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise InputError(f"Cannot read '{path}' as NetCDF: {reason}") from None
        name = f"'{path}'"
    if dataset.get(EMBEDDING_VARIABLE, xr.DataArray()).dims != ("time", "embedding"):
        raise InputError(
            f"{name} has no '{EMBEDDING_VARIABLE}' variable of dims (time, embedding); expected "
            "the output of `embed`."
        )
    return dataset


def _fields_of(embeddings: xr.Dataset, source: Source | None) -> xr.DataArray | None:
    """The fields the embeddings were made of, by their run's selection: of ``source``, else
    of the files the embeddings or their run name; None without a run or files."""
    run_dir = embeddings.attrs.get("run_dir")
    if not run_dir or not Path(run_dir, "run.json").is_file():
        return None
    selection = DataSelection(**read_run(run_dir)["data"])
    if source is None and embeddings.attrs.get("title") == EMBEDDINGS_TITLE:
        source = embeddings.attrs.get("source") or None  # the files `embed` read
    if source is None and selection.source is None:
        return None
    return selection.load(source)


def clustering_scores(points: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Silhouette (higher is better), Davies-Bouldin (lower), Calinski-Harabasz (higher)."""
    sample = min(SILHOUETTE_SAMPLES, len(points))
    return {
        "silhouette": float(
            silhouette_score(points, labels, sample_size=sample, random_state=seed)
        ),
        "davies_bouldin": float(davies_bouldin_score(points, labels)),
        "calinski_harabasz": float(calinski_harabasz_score(points, labels)),
    }


def persistence(labels: np.ndarray, k: int) -> np.ndarray:
    """Mean length, in timesteps, of the uninterrupted runs of each cluster. ``(k,)``.

    A ``-1`` in ``labels`` (no label, or a gap in time) interrupts a run.
    """
    change = np.flatnonzero(np.diff(labels)) + 1
    edges = np.concatenate([[0], change, [labels.size]])
    run_labels, run_lengths = labels[edges[:-1]], np.diff(edges)
    return np.array(
        [run_lengths[run_labels == c].mean() if np.any(run_labels == c) else 0.0 for c in range(k)]
    )


def transition_matrix(labels: np.ndarray, k: int) -> np.ndarray:
    """``P[i, j]``: probability that cluster ``i`` is followed by ``j`` the next step. ``(k, k)``.

    Steps from or to a ``-1`` (no label, or a gap in time) are not transitions.
    """
    counts = np.zeros((k, k))
    valid = (labels[:-1] >= 0) & (labels[1:] >= 0)
    np.add.at(counts, (labels[:-1][valid], labels[1:][valid]), 1)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def with_breaks(labels: np.ndarray, time: xr.DataArray) -> np.ndarray:
    """``labels (T,)`` with a ``-1`` inserted at every gap in ``time``, so no run or transition
    spans a gap (e.g. from one winter to the next of a season subset)."""
    pieces = [np.append(labels[segment], -1) for segment in contiguous_segments(time)]
    return np.concatenate(pieces)[:-1]


def choose_k(points: np.ndarray, seed: int = 0) -> int:
    """The K in :data:`AUTO_K` with the highest silhouette."""
    scores = {
        k: clustering_scores(points, kmeans(k, seed).fit_predict(points))["silhouette"]
        for k in AUTO_K
        if k < len(points)
    }
    return max(scores, key=scores.get)


def _labels_dataset(
    time: xr.DataArray, labels: np.ndarray, covered: np.ndarray, model: KMeans, scores: dict
) -> xr.Dataset:
    k = model.n_clusters
    full = np.full(time.size, -1, dtype="int16")
    full[covered] = labels
    sequence = with_breaks(full, time)
    months = time.dt.month.values[covered]
    by_month = np.array(
        [[np.sum((labels == c) & (months == m)) for m in range(1, 13)] for c in range(k)]
    )
    names = " ".join(f"regime_{c}" for c in range(k))
    return xr.Dataset(
        {
            "label": (
                "time",
                full,
                {
                    "long_name": "regime (KMeans cluster of the embeddings)",
                    "flag_values": np.arange(k, dtype="int16"),
                    "flag_meanings": names,
                    "_FillValue": np.int16(-1),
                },
            ),
            "centroid": (("cluster", "embedding"), model.cluster_centers_),
            "persistence": (
                "cluster",
                persistence(sequence, k),
                {"long_name": "mean regime duration", "units": "timesteps"},
            ),
            "transition_probability": (
                ("from_cluster", "to_cluster"),
                transition_matrix(sequence, k),
            ),
            "frequency_by_month": (("cluster", "month"), by_month),
            "frequency": ("cluster", np.bincount(labels, minlength=k) / labels.size),
        },
        coords={"time": time, "cluster": np.arange(k), "month": np.arange(1, 13)},
        attrs={"k": k, **scores},
    )


def channel_variable_name(channel: str) -> str:
    """A NetCDF-safe variable name for a channel: ``z@500 -> z_500``."""
    return channel.replace("@", "_")


def composites(fields: xr.DataArray, labels: xr.DataArray, k: int) -> xr.Dataset:
    """Mean fields per cluster and their anomaly against the mean of all labeled times."""
    labeled = fields.isel(time=(labels >= 0).values)
    chosen = labels.where(labels >= 0, drop=True).astype(int)
    overall = labeled.mean("time")
    means = xr.concat(
        [labeled.isel(time=(chosen == c).values).mean("time") for c in range(k)], dim="cluster"
    ).assign_coords(cluster=np.arange(k))
    variables = {}
    for channel, units in zip(fields["channel"].values, fields["units"].values):
        name = channel_variable_name(str(channel))
        mean = means.sel(channel=channel, drop=True).drop_vars("units", errors="ignore")
        anomaly = mean - overall.sel(channel=channel, drop=True).drop_vars("units", errors="ignore")
        variables[name] = mean.assign_attrs(units=str(units), long_name=f"{channel} composite")
        variables[f"{name}_anomaly"] = anomaly.assign_attrs(
            units=str(units), long_name=f"{channel} composite minus the mean of all times"
        )
    return xr.Dataset(variables).compute()


def cluster(
    embeddings: str | os.PathLike | xr.Dataset | xr.DataArray,
    k: int | None = 4,
    out: str | os.PathLike | None = None,
    source: Source | None = None,
    seed: int = 0,
) -> ClusterResult:
    """KMeans regimes of the embeddings, with statistics, composites and maps.

    ``embeddings``: the file or Dataset ``embed`` writes, or the DataArray
    ``FAEmbedding.transform`` returns. ``k=None`` picks K in 2..8 by silhouette. Composites
    of the original variables (physical units) need the run that made the embeddings (their
    ``run_dir`` attribute) and its data files, or ``source`` (files or xarray objects; a run
    trained on xarray objects has no files, so without ``source`` it gets no composites).
    Writes ``out`` (labels), ``<out>_composites.nc`` and
    ``<out>_composites.png`` when ``out`` is given.
    """
    dataset = _open_embeddings(embeddings)
    values = dataset[EMBEDDING_VARIABLE].values
    covered = np.isfinite(values).all(axis=1)
    points = values[covered]
    if len(points) < 3:
        raise InputError(
            f"Only {len(points)} timesteps have an embedding; clustering needs at least 3."
        )
    if k is None:
        k = choose_k(points, seed)
    if not 2 <= k < len(points):
        raise InputError(
            f"k must be between 2 and {len(points) - 1} (the embedded timesteps); got {k}."
        )
    model = kmeans(k, seed).fit(points)
    labels = model.labels_
    result = _labels_dataset(
        dataset["time"], labels, covered, model, clustering_scores(points, labels, seed)
    )
    result.attrs["embeddings"] = (
        "" if isinstance(embeddings, (xr.Dataset, xr.DataArray)) else str(embeddings)
    )

    composite = None
    fields = _fields_of(dataset, source)
    if fields is not None:
        composite = composites(fields.sel(time=dataset["time"]), result["label"], k)
    files = []
    if out is not None:
        out = Path(out)
        files.append(write_netcdf(result, out))
        if composite is not None:
            stem = out.with_suffix("")
            files.append(write_netcdf(composite, f"{stem}_composites.nc"))
            files.append(plot_composites(composite, result, Path(f"{stem}_composites.png")))
    return ClusterResult(labels=result, composites=composite, files=files)
