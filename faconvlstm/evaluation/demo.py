"""The demo: synthetic data -> training -> embeddings -> regimes -> what the embeddings know."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import xarray as xr

from faconvlstm.data.calendar import year_fraction
from faconvlstm.data.synthetic import FACTORS, SYNTHETIC_VARIABLES, write_synthetic_dataset
from faconvlstm.evaluation.probes import one_hot, probe_r2, seasonal_features
from faconvlstm.pipeline import (
    ClusterResult,
    DataSelection,
    TrainingResult,
    TrainingSettings,
    cluster,
    embed,
    fit,
)
from faconvlstm.pipeline.embedding import EMBEDDING_VARIABLE

#: Factors that take discrete values, probed as one-hot indicators.
CATEGORICAL_FACTORS = {"regime"}


#: The two runs of the demo: raw fields, whose regimes are the seasons, and anomalies.
DEMO_RUNS = {"raw": False, "anomalies": True}


@dataclasses.dataclass
class DemoRun:
    """One trained model of the demo and what came out of it."""

    training: TrainingResult
    embeddings: xr.Dataset
    clusters: ClusterResult
    probes: dict[str, float]


@dataclasses.dataclass
class DemoResult:
    """The demo's runs by name, the probe floor of each factor, and the wall time."""

    out_dir: Path
    runs: dict[str, DemoRun]
    floor: dict[str, float]
    seconds: float


def _covered(embeddings: xr.Dataset) -> np.ndarray:
    return np.isfinite(embeddings[EMBEDDING_VARIABLE].values).all(axis=1)


def factor_targets(factors: xr.Dataset, time: xr.DataArray) -> dict[str, np.ndarray]:
    """Each ground-truth ``factor_<name>`` of ``factors`` at ``time``; categorical ones one-hot."""
    targets = {}
    for name in FACTORS:
        target = factors[f"factor_{name}"].sel(time=time).values
        targets[name] = one_hot(target) if name in CATEGORICAL_FACTORS else target
    return targets


def _probe_factors(
    features: np.ndarray, embeddings: xr.Dataset, factors: xr.Dataset
) -> dict[str, float]:
    """Blocked-CV R^2 of each factor from ``features (time, d)``, on the embedded timesteps."""
    covered = _covered(embeddings)
    targets = factor_targets(factors, embeddings["time"].isel(time=covered))
    return {name: probe_r2(features[covered], target) for name, target in targets.items()}


def factor_probes(embeddings: xr.Dataset, factors: xr.Dataset) -> dict[str, float]:
    """Blocked-CV R^2 of each ground-truth ``factor_<name>`` from the embeddings."""
    return _probe_factors(embeddings[EMBEDDING_VARIABLE].values, embeddings, factors)


def floor_probes(embeddings: xr.Dataset, factors: xr.Dataset) -> dict[str, float]:
    """The same R^2 from the seasonal encoding alone: what the calendar explains for free."""
    return _probe_factors(seasonal_features(year_fraction(embeddings["time"])), embeddings, factors)


def run_demo(
    out_dir: str | os.PathLike = "faconvlstm-demo",
    years: int = 4,
    epochs: int = 6,
    k: int = 4,
    seed: int = 0,
    model: dict | None = None,
    progress: bool = True,
) -> DemoResult:
    """Run every step on the built-in synthetic dataset into ``out_dir``, twice.

    One model learns from the raw fields (its regimes are mostly the seasons), one from
    anomalies against the day-of-year climatology (its regimes are the weather regimes).
    Files: ``synthetic.nc``, and for each of ``raw`` and ``anomalies``: ``<name>/run/``
    (checkpoints; re-running resumes), ``<name>/embeddings.nc``, ``<name>/labels.nc``,
    ``<name>/labels_composites.nc`` and ``<name>/labels_composites.png``.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_path = out_dir / "synthetic.nc"
    if not data_path.exists():
        write_synthetic_dataset(data_path, years=years, seed=seed)
    selection = DataSelection(source=str(data_path.resolve()), variables=SYNTHETIC_VARIABLES)
    with xr.open_dataset(data_path) as synthetic:
        factors = synthetic[[f"factor_{name}" for name in FACTORS]].load()
    runs = {}
    for name, anomalies in DEMO_RUNS.items():
        run_dir = out_dir / name
        run_dir.mkdir(exist_ok=True)
        settings = TrainingSettings(epochs=epochs, seed=seed, log1p=["tp"], anomalies=anomalies)
        training = fit(
            selection, run_dir / "run", model=model, training=settings, progress=progress
        )
        embeddings = embed(training.run_dir, out=run_dir / "embeddings.nc")
        clusters = cluster(embeddings, k=k, out=run_dir / "labels.nc", seed=seed)
        runs[name] = DemoRun(training, embeddings, clusters, factor_probes(embeddings, factors))
    floor = floor_probes(runs["raw"].embeddings, factors)
    return DemoResult(out_dir, runs, floor, time.perf_counter() - started)
