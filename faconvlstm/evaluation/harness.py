"""The evaluation harness: FA against its ConvLSTM2D twins and the EOF baseline, claim by claim.

``evaluate`` trains every model of :func:`model_variants` for each seed (ablations on the first
seed only), embeds the data with each, and measures efficiency, stability across seeds,
interpretability (probes), robustness to perturbed inputs, the ablations and the quality of
the regimes. :mod:`faconvlstm.evaluation.report` writes the result as Markdown and PNGs.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from pathlib import Path

import numpy as np
import xarray as xr
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans

from faconvlstm.data.calendar import year_fraction
from faconvlstm.data.indices import align_index, read_indices
from faconvlstm.data.io import open_dataset, standardize_axes
from faconvlstm.data.preprocessing import Preprocessor
from faconvlstm.data.synthetic import FACTORS, write_synthetic_dataset
from faconvlstm.data.windows import WindowDataset, training_starts
from faconvlstm.evaluation.cost import layer_macs
from faconvlstm.evaluation.eof import eof_embeddings, eof_regimes
from faconvlstm.evaluation.mechanisms import mechanism_maps
from faconvlstm.evaluation.memory import peak_training_memory
from faconvlstm.evaluation.perturbations import add_noise, drop_cells, drop_timesteps
from faconvlstm.evaluation.probes import one_hot, probe_r2, seasonal_features
from faconvlstm.evaluation.similarity import clustering_agreement, linear_cka
from faconvlstm.models import (
    ModelConfig,
    build_autoencoder,
    encoder_layers,
    encoder_parameters,
)
from faconvlstm.pipeline import DataSelection, TrainingSettings, fit
from faconvlstm.pipeline.clustering import clustering_scores, persistence
from faconvlstm.pipeline.embedding import TrainedRun
from faconvlstm.pipeline.runs import PREPROCESSOR_FILE
from faconvlstm.pipeline.training import split_years

FA, CONVLSTM, CONVLSTM_MATCHED, EOF = "FA", "ConvLSTM2D", "ConvLSTM2D (matched)", "EOF"
#: Each FA mechanism switched off in turn (model settings on top of the FA model's).
ABLATIONS = {
    "no multi-scale": {"layer_options": {"multiscale_dilations": [1]}},
    "no squeeze-excitation": {"layer_options": {"squeeze_excitation": False}},
    "no peepholes": {"layer_options": {"peephole": False}},
    "no axial attention": {"layer_options": {"attention_every": 0}},
    "no seasonal encoding": {"harmonics": 0},
    "no orthogonality": {"orthogonality": 0.0},
}
SYNTHETIC_VARIABLES = ["t2m", "msl", "z@500", "z@850", "tp", "sst"]
PERTURBATIONS = {
    "gaussian noise": add_noise,
    "missing cells": drop_cells,
    "missing timesteps": drop_timesteps,
}
#: Leading EOF principal components probed on real data, where no ground truth exists.
PROBED_PCS = 3


@dataclasses.dataclass
class EvaluationSettings:
    """What ``evaluate`` trains and measures."""

    seeds: int = 3
    epochs: int = 6
    k: int = 4
    anomalies: bool = True
    log1p: list[str] = dataclasses.field(default_factory=list)
    model: dict = dataclasses.field(default_factory=dict)
    ablations: bool = True
    batch_size: int = 8
    noise_levels: tuple[float, ...] = (0.1, 0.25, 0.5)
    missing_fractions: tuple[float, ...] = (0.1, 0.25, 0.5)
    years: int = 4
    index_files: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Evaluation:
    """Every measured table of an evaluation, keyed by model name."""

    data: DataSelection
    settings: EvaluationSettings
    efficiency: dict[str, dict[str, float]]
    stability: dict[str, dict[str, float]]
    cka_matrices: dict[str, np.ndarray]
    probes: dict[str, dict[str, tuple[float, float]]]
    probe_targets: str
    robustness: dict[str, dict[str, list[tuple[float, float, float]]]]
    ablations: dict[str, dict[str, float]]
    clustering: dict[str, dict[str, float]]
    histories: dict[str, dict[str, list[float]]]
    labels: dict[str, np.ndarray]
    mechanisms: xr.Dataset
    embeddings: dict[tuple[str, int], np.ndarray]
    time: xr.DataArray
    seconds: float


def convlstm_filters_matching(config: ModelConfig, parameters: int) -> int:
    """ConvLSTM2D filters per layer whose encoder parameter count is nearest ``parameters``."""

    def count(filters: int) -> int:
        total, channels = 0, config.channels + 1
        for _ in config.filters:
            total += 4 * filters * (config.kernel_size**2 * (channels + filters) + 1)
            channels = filters
        return total

    return min(range(1, max(config.filters) + 1), key=lambda f: abs(count(f) - parameters))


def model_variants(config: ModelConfig, ablations: bool) -> dict[str, dict]:
    """Model settings by name: FA, its same-filters and capacity-matched twins, ablations."""
    autoencoder = build_autoencoder(config)
    matched = convlstm_filters_matching(config, encoder_parameters(autoencoder))
    variants = {
        FA: {},
        CONVLSTM: {"cell": "convlstm"},
        CONVLSTM_MATCHED: {"cell": "convlstm", "filters": [matched] * len(config.filters)},
    }
    if ablations:
        variants.update({f"FA, {name}": settings for name, settings in ABLATIONS.items()})
    return variants


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def _finite_rows(*arrays: np.ndarray) -> np.ndarray:
    return np.all([np.isfinite(a).all(axis=1) for a in arrays], axis=0)


def _targets(source: xr.Dataset | None, eof_pcs: np.ndarray, time: xr.DataArray) -> dict:
    """Ground-truth factors of ``source`` (synthetic data); without it the leading EOF PCs."""
    if source is not None:
        factors = {name: source[f"factor_{name}"].sel(time=time).values for name in FACTORS}
        factors["regime"] = one_hot(factors["regime"])
        return factors
    return {f"EOF PC {i + 1}": eof_pcs[:, i] for i in range(PROBED_PCS)}


def _index_targets(index_files: list[str], time: xr.DataArray) -> dict[str, np.ndarray]:
    """Every index of the user's files, interpolated onto ``time`` (NaN outside its span)."""
    targets = {}
    for path in index_files:
        for name, series in read_indices(path).items():
            if f"index {name}" in targets:
                raise ValueError(f"The index {name!r} appears in more than one index file.")
            targets[f"index {name}"] = align_index(series, time)
    return targets


def _probe_all(features: np.ndarray, targets: dict) -> dict[str, float]:
    """Probe R^2 of each target, on the timesteps where features and target are finite."""
    scores, finite_features = {}, np.isfinite(features).all(axis=1)
    for name, target in targets.items():
        rows = finite_features & np.isfinite(target.reshape(len(target), -1)).all(axis=1)
        scores[name] = probe_r2(features[rows], target[rows])
    return scores


def _time_to_loss(history: dict[str, list[float]], target: float) -> float:
    """Wall seconds of training until the epoch loss first reaches ``target`` (NaN if never)."""
    elapsed = np.cumsum(history["epoch_seconds"])
    reached = np.flatnonzero(np.asarray(history["loss"]) <= target)
    return float(elapsed[reached[0]]) if reached.size else float("nan")


def _composites(fields: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Mean preprocessed field of each cluster, NaN cells as 0: ``(k, cells)``."""
    flat = np.nan_to_num(fields.reshape(len(fields), -1))
    return np.stack([flat[labels == c].mean(axis=0) for c in range(k)])


def pattern_correlation(composites: np.ndarray, reference: np.ndarray) -> float:
    """Mean correlation of composites with the reference's after matching clusters one to one."""
    correlation = np.corrcoef(composites, reference)[: len(composites), len(composites) :]
    rows, columns = linear_sum_assignment(-correlation)
    return float(correlation[rows, columns].mean())


class _Runs:
    """Trains (or resumes) the run of each (model, seed) under ``out_dir / runs``."""

    def __init__(self, data, out_dir, settings, progress):
        self.data, self.out_dir, self.settings, self.progress = data, out_dir, settings, progress
        self.results = {}

    def train(self, name: str, model: dict, seed: int):
        training = TrainingSettings(
            epochs=self.settings.epochs, batch_size=self.settings.batch_size, seed=seed,
            log1p=self.settings.log1p, anomalies=self.settings.anomalies,
        )
        run_dir = self.out_dir / "runs" / f"{_slug(name)}-seed{seed}"
        result = fit(self.data, run_dir, {**self.settings.model, **model}, training, self.progress)
        self.results[name, seed] = result
        return result


def evaluate(
    data: DataSelection | None,
    out_dir: str | os.PathLike,
    settings: EvaluationSettings | None = None,
    progress: bool = True,
) -> Evaluation:
    """Train, embed and measure every model; ``data=None`` uses the synthetic dataset."""
    started = time.perf_counter()
    settings = settings or EvaluationSettings()
    if settings.seeds < 2:
        raise ValueError(f"seeds must be at least 2 to measure stability; got {settings.seeds}.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if data is None:
        path = out_dir / "synthetic.nc"
        if not path.exists():
            write_synthetic_dataset(path, years=settings.years)
        data = DataSelection(str(path.resolve()), SYNTHETIC_VARIABLES)
        settings = dataclasses.replace(settings, log1p=settings.log1p or ["tp"])
    fields = data.load().load()
    index_targets = _index_targets(settings.index_files, fields["time"])
    config = ModelConfig(
        channels=fields.sizes["channel"],
        grid=(fields.sizes["lat"], fields.sizes["lon"]),
        **settings.model,
    )
    variants = model_variants(config, settings.ablations)
    runs = _Runs(data, out_dir, settings, progress)
    main = [FA, CONVLSTM, CONVLSTM_MATCHED]
    seeds = range(settings.seeds)
    for name in main:
        for seed in seeds:
            runs.train(name, variants[name], seed)
    for name in variants:
        if name not in main:
            runs.train(name, variants[name], 0)

    embeddings, inference, trained = {}, {}, {}
    for (name, seed), result in runs.results.items():
        clock = time.perf_counter()
        run = TrainedRun(result.run_dir)
        embeddings[name, seed] = run.embed(fields)
        inference[name, seed] = time.perf_counter() - clock
        if seed == 0:  # the robustness and mechanism maps use the first seed's models
            trained[name] = run

    preprocessor = Preprocessor.load(runs.results[FA, 0].run_dir / PREPROCESSOR_FILE)
    train_fields = split_years(fields, 1)[0]
    preprocessed = preprocessor.transform(fields).load()
    eof = eof_embeddings(preprocessor.transform(train_fields), preprocessed, config.embedding_dim)
    eof_pcs = eof["embeddings"].values
    eof_labels = eof_regimes(
        preprocessor.transform(train_fields), preprocessed, config.embedding_dim, settings.k
    )

    source = standardize_axes(open_dataset(data.source))
    has_factors = all(f"factor_{name}" in source for name in FACTORS)
    targets = _targets(source if has_factors else None, eof_pcs, fields["time"])
    targets.update(index_targets)
    floor = seasonal_features(year_fraction(fields["time"]))

    histories = {name: runs.results[name, 0].history for name in variants}
    starts = training_starts(preprocessed["time"], config.window, config.window)
    batch = WindowDataset(preprocessed, config.window, starts, settings.batch_size)[0]
    target_loss = max(histories[name]["loss"][-1] for name in main)
    efficiency = {}
    for name in main:
        result = runs.results[name, 0]
        autoencoder = build_autoencoder(ModelConfig(**{**config.to_dict(), **variants[name]}))
        encoder = encoder_layers(autoencoder)
        steps = [runs.results[name, s].train_steps for s in seeds]
        epoch_seconds = [np.median(runs.results[name, s].history["epoch_seconds"]) for s in seeds]
        efficiency[name] = {
            "encoder parameters": encoder_parameters(autoencoder),
            "encoder GMACs per window": sum(
                layer_macs(layer, config.window, *config.grid) for layer in encoder
            ) / 1e9,
            "seconds per training batch": float(np.median(np.divide(epoch_seconds, steps))),
            "seconds to embed the data": float(np.median([inference[name, s] for s in seeds])),
            "peak training MiB": peak_training_memory(
                {**config.to_dict(), **variants[name]}, batch
            ),
            f"seconds to loss {target_loss:.3f}": _time_to_loss(result.history, target_loss),
        }

    stability, cka_matrices, labels = {}, {}, {}
    for name in main:
        per_seed = [embeddings[name, s] for s in seeds]
        rows = _finite_rows(*per_seed)
        matrix = np.ones((len(per_seed), len(per_seed)))
        for i, j in itertools.combinations(range(len(per_seed)), 2):
            matrix[i, j] = matrix[j, i] = linear_cka(per_seed[i][rows], per_seed[j][rows])
        seed_labels = []
        for embedding in per_seed:
            assigned = np.full(len(embedding), -1)
            assigned[rows] = KMeans(settings.k, n_init=10, random_state=0).fit_predict(
                embedding[rows]
            )
            seed_labels.append(assigned)
        labels[name] = seed_labels[0]
        pairs = list(itertools.combinations(range(len(per_seed)), 2))
        cka_matrices[name] = matrix
        stability[name] = {
            "mean CKA between seeds": float(np.mean([matrix[i, j] for i, j in pairs])),
            "mean ARI between seeds": float(
                np.mean([clustering_agreement(seed_labels[i], seed_labels[j]) for i, j in pairs])
            ),
        }
    labels[EOF] = eof_labels

    probes = {}
    for name in main:
        per_seed = [_probe_all(embeddings[name, s], targets) for s in seeds]
        probes[name] = {
            target: (float(np.mean([p[target] for p in per_seed])),
                     float(np.std([p[target] for p in per_seed])))
            for target in targets
        }
    probes[EOF] = {t: (value, 0.0) for t, value in _probe_all(eof_pcs, targets).items()}
    probes["seasonal encoding alone"] = {
        t: (value, 0.0) for t, value in _probe_all(floor, targets).items()
    }

    robustness = {}
    for name in main:
        run, clean = trained[name], embeddings[name, 0]
        rows = np.isfinite(clean).all(axis=1)
        kmeans = KMeans(settings.k, n_init=10, random_state=0).fit(clean[rows])
        clean_labels = kmeans.predict(clean[rows])
        robustness[name] = {}
        for kind, perturb in PERTURBATIONS.items():
            levels = settings.noise_levels if kind == "gaussian noise" else settings.missing_fractions
            curve = []
            for level in levels:
                perturbed = run.embed(perturb(fields, level, seed=1))
                both = rows & np.isfinite(perturbed).all(axis=1)
                agreement = clustering_agreement(
                    clean_labels[both[rows]], kmeans.predict(perturbed[both])
                )
                curve.append((level, linear_cka(clean[both], perturbed[both]), agreement))
            robustness[name][kind] = curve

    ablation_table = {}
    for name in variants:
        if name in (CONVLSTM, CONVLSTM_MATCHED):
            continue
        history = runs.results[name, 0].history
        probed = _probe_all(embeddings[name, 0], targets)
        ablation_table[name] = {
            "final loss": history["loss"][-1],
            "final validation loss": history.get("val_loss", [float("nan")])[-1],
            **{f"R^2 {target}": value for target, value in probed.items()},
        }

    reference = _composites(preprocessed.values, eof_labels, settings.k)
    clustering = {}
    for name, assigned in labels.items():
        points = eof_pcs if name == EOF else embeddings[name, 0]
        valid = assigned >= 0
        clustering[name] = {
            **clustering_scores(points[valid], assigned[valid]),
            "mean persistence (steps)": float(persistence(assigned[valid], settings.k).mean()),
            "pattern correlation with EOF regimes": pattern_correlation(
                _composites(preprocessed.values[valid], assigned[valid], settings.k), reference
            ),
        }

    probe_targets = "ground-truth factors" if has_factors else f"leading {PROBED_PCS} EOF PCs"
    if settings.index_files:
        probe_targets += " and the given indices"
    return Evaluation(
        data=data, settings=settings, efficiency=efficiency, stability=stability,
        cka_matrices=cka_matrices, probes=probes, probe_targets=probe_targets,
        robustness=robustness, ablations=ablation_table, clustering=clustering,
        histories=histories, labels=labels,
        mechanisms=mechanism_maps(trained[FA], fields, labels[FA], settings.k),
        embeddings=embeddings, time=fields["time"], seconds=time.perf_counter() - started,
    )
