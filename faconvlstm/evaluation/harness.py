"""The evaluation harness: FA against its ConvLSTM2D twins and the EOF baseline, claim by claim.

``evaluate`` trains every model of :func:`model_variants` for each seed (the mechanism
ablations on the first seed only), embeds the data with each (centred and causal), and
measures efficiency, stability across seeds, interpretability (probes), skill at leads
against linear baselines (:mod:`faconvlstm.evaluation.skill`), robustness to perturbed
inputs, the ablations and the quality of the regimes. :mod:`faconvlstm.evaluation.report`
writes the result as Markdown and PNGs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import xarray as xr
from scipy.optimize import linear_sum_assignment

from faconvlstm import validation
from faconvlstm.data.calendar import lead_steps, year_fraction
from faconvlstm.data.indices import align_index, read_indices
from faconvlstm.data.io import open_dataset, standardize_axes
from faconvlstm.data.preprocessing import Preprocessor
from faconvlstm.data.splits import Split, WindowAdapted
from faconvlstm.data.synthetic import FACTORS, SYNTHETIC_VARIABLES, write_synthetic_dataset
from faconvlstm.data.windows import WindowDataset, training_starts
from faconvlstm.errors import InputError
from faconvlstm.evaluation.cost import layer_macs
from faconvlstm.evaluation.demo import factor_targets
from faconvlstm.evaluation.eof import component_regimes, eof_embeddings, separated_modes
from faconvlstm.evaluation.mechanisms import mechanism_maps
from faconvlstm.evaluation.memory import peak_training_memory
from faconvlstm.evaluation.perturbations import add_noise, drop_cells, drop_timesteps
from faconvlstm.evaluation.probes import probe_r2, seasonal_features
from faconvlstm.evaluation.similarity import cka_matrix, clustering_agreement, linear_cka
from faconvlstm.evaluation.skill import extended_eofs, skill_table
from faconvlstm.models import (
    ModelConfig,
    build_autoencoder,
    encoder_layers,
    encoder_parameters,
)
from faconvlstm.pipeline import DataSelection, TrainingResult, TrainingSettings, fit
from faconvlstm.pipeline.clustering import clustering_scores, kmeans, persistence
from faconvlstm.pipeline.embedding import EMBEDDING_VARIABLE, TrainedRun
from faconvlstm.pipeline.runs import PREPROCESSOR_FILE

FA, CONVLSTM, CONVLSTM_MATCHED, EOF = "FA", "ConvLSTM2D", "ConvLSTM2D (matched)", "EOF"
#: The models trained with every seed; the mechanism ablations are trained with seed 0 only.
MAIN_MODELS = (FA, CONVLSTM, CONVLSTM_MATCHED)
ENCODER_OFF = "FA, encoder off (input skip alone)"
#: What the embedding's dynamics are credited to, each switched off in turn (model settings
#: on top of FA's), trained with every seed: the recurrent encoder, the path from the input
#: frames to the head, and the forecast objective.
DYNAMICS_ABLATIONS = {
    ENCODER_OFF: {"encoder": False, "input_skip": True},
    "FA, input skip off": {"input_skip": False},
    "FA, reconstruction only": {"forecast_horizon": 0},
}
#: The baselines of the skill table: the leading EOF PCs of the step itself (the regression
#: of a linear inverse model) and extended EOFs of the window that ends at it.
PCS_AT_T, EXTENDED_EOFS = "EOF PCs at t", "extended EOFs of the window"
#: Each FA mechanism switched off or changed in turn (model settings on top of the FA
#: model's); :func:`model_variants` adds a bottleneck as wide as the filters.
ABLATIONS = {
    "no multi-scale": {"layer_options": {"multiscale_dilations": [1]}},
    "no squeeze-excitation": {"layer_options": {"squeeze_excitation": False}},
    "no peepholes": {"layer_options": {"peephole": False}},
    "no axial attention": {"layer_options": {"attention_every": 0}},
    "no seasonal encoding": {"harmonics": 0},
    "no orthogonality": {"orthogonality": 0.0},
    "recurrent initializer glorot_uniform": {
        "layer_options": {"recurrent_initializer": "glorot_uniform"}
    },
}
PERTURBATIONS = {
    "gaussian noise": add_noise,
    "missing cells": drop_cells,
    "missing timesteps": drop_timesteps,
}
#: Leading EOF principal components probed on real data, where no ground truth exists.
PROBED_PCS = 3


#: The stages of an evaluation whose wall time the report gives: training, then what is
#: measured after it.
STAGES = (
    "training", "embedding the data with every run", "EOFs, probes, stability, regimes",
    "robustness (perturbed inputs re-embedded)", "efficiency (peak memory in fresh processes)",
    "mechanism maps", "skill at leads",
)


@contextlib.contextmanager
def _timed(stages: dict[str, float], stage: str) -> Iterator[None]:
    """Adds the wall time of the ``with`` block to ``stages[stage]``."""
    clock = time.perf_counter()
    yield
    stages[stage] = stages.get(stage, 0.0) + time.perf_counter() - clock


@dataclasses.dataclass
class EvaluationSettings:
    """What ``evaluate`` trains and measures."""

    seeds: int = 3
    #: The most epochs of each model (each stops once converged: see TrainingSettings).
    epochs: int = 100
    k: int = 4
    anomalies: bool = True
    detrend: bool = False
    log1p: list[str] = dataclasses.field(default_factory=list)
    model: dict = dataclasses.field(default_factory=dict)
    ablations: bool = True
    batch_size: int = 8
    noise_levels: tuple[float, ...] = (0.1, 0.25, 0.5)
    missing_fractions: tuple[float, ...] = (0.1, 0.25, 0.5)
    years: int = 4
    index_files: list[str] = dataclasses.field(default_factory=list)
    #: Robustness re-embeds every perturbed copy at evenly spaced timesteps, about this many
    #: (all of them on shorter data): see :func:`robustness_timesteps`.
    robustness_timesteps: int = 512
    #: The validation part of every run (see TrainingSettings): held-out skill is scored on it.
    validation_years: int | None = None
    #: Leads (in steps) of the skill table; None: by the data's time step (``lead_steps``).
    leads: tuple[int, ...] | None = None


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
    #: EOF PC targets that North's rule does not separate from a neighbouring EOF.
    unseparated_targets: list[str]
    robustness: dict[str, dict[str, list[tuple[float, float, float]]]]
    #: Skill at leads (:func:`~faconvlstm.evaluation.skill.skill_table`) of the causal
    #: embeddings and the baselines, at ``leads`` (0, the step itself, first); ``cut`` is
    #: where the held-out timesteps start.
    skill: dict
    leads: tuple[int, ...]
    cut: int
    ablations: dict[str, dict[str, float]]
    clustering: dict[str, dict[str, float]]
    histories: dict[str, dict[str, list[float]]]
    labels: dict[str, np.ndarray]
    mechanisms: xr.Dataset
    embeddings: dict[tuple[str, int], np.ndarray]
    time: xr.DataArray
    seconds: float
    #: Wall time of each stage (:data:`STAGES`), in seconds.
    stage_seconds: dict[str, float] = dataclasses.field(default_factory=dict)


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
        variants.update(DYNAMICS_ABLATIONS)
        variants.update({f"FA, {name}": settings for name, settings in ABLATIONS.items()})
        variants["FA, full-width bottleneck"] = {
            "layer_options": {"bottleneck": max(config.filters)}
        }
    return variants


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def run_directory(out_dir: str | os.PathLike, name: str, seed: int) -> Path:
    """The run directory of model ``name`` trained with ``seed`` in the evaluation ``out_dir``."""
    return Path(out_dir) / "runs" / f"{_slug(name)}-seed{seed}"


def _finite_rows(*arrays: np.ndarray) -> np.ndarray:
    return np.all([np.isfinite(a).all(axis=1) for a in arrays], axis=0)


def _targets(source: xr.Dataset | None, eof_pcs: np.ndarray, time: xr.DataArray) -> dict:
    """Ground-truth factors of ``source`` (synthetic data); without it the leading EOF PCs."""
    if source is not None:
        return factor_targets(source, time)
    return {f"EOF PC {i + 1}": eof_pcs[:, i] for i in range(PROBED_PCS)}


def _index_targets(index_files: list[str], time: xr.DataArray) -> dict[str, np.ndarray]:
    """Every index of the user's files, interpolated onto ``time`` (NaN outside its span)."""
    targets = {}
    for path in index_files:
        for name, series in read_indices(path).items():
            if f"index {name}" in targets:
                raise InputError(f"The index {name!r} appears in more than one index file.")
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



@dataclasses.dataclass
class _Models:
    """Every trained model of an evaluation and its embeddings of the data.

    ``results``, ``embeddings`` (each ``(time, embedding_dim)``, every step from the window
    where it sits nearest the center) and ``inference`` (seconds to load the run and embed
    the data) are keyed by ``(name, seed)``, as are ``causal`` embeddings (every step from
    the window that ends at it) of the models trained with every seed; ``loaded`` holds the
    seed-0 run of each model.
    """

    config: ModelConfig
    variants: dict[str, dict]
    seeds: range
    results: dict[tuple[str, int], TrainingResult]
    embeddings: dict[tuple[str, int], np.ndarray]
    causal: dict[tuple[str, int], np.ndarray]
    inference: dict[tuple[str, int], float]
    loaded: dict[str, TrainedRun]

    def history(self, name: str) -> dict[str, list[float]]:
        """The training history of model ``name``'s seed-0 run."""
        return self.results[name, 0].history


@dataclasses.dataclass
class _Baseline:
    """The preprocessed fields of FA seed 0, their leading EOF PCs, KMeans regimes on them and
    whether each EOF is separated from its neighbours (:func:`separated_modes`)."""

    preprocessed: xr.DataArray
    pcs: np.ndarray
    labels: np.ndarray
    separated: np.ndarray


def _with_synthetic_data(
    data: DataSelection | None, out_dir: Path, settings: EvaluationSettings
) -> tuple[DataSelection, EvaluationSettings]:
    """``data``, or the synthetic dataset (written once into ``out_dir``) with ``tp`` log1p."""
    if data is not None:
        return data, settings
    path = out_dir / "synthetic.nc"
    if not path.exists():
        write_synthetic_dataset(path, years=settings.years)
    data = DataSelection(str(path.resolve()), SYNTHETIC_VARIABLES)
    return data, dataclasses.replace(settings, log1p=settings.log1p or ["tp"])


def _train(
    data: DataSelection, out_dir: Path, settings: EvaluationSettings, variants: dict[str, dict],
    progress: bool,
) -> dict[tuple[str, int], TrainingResult]:
    """Train (or resume) the main models and the dynamics ablations with every seed, then
    the mechanism ablations with seed 0."""
    every_seed = _trained_with_every_seed(variants)
    plan = [(name, seed) for name in every_seed for seed in range(settings.seeds)]
    plan += [(name, 0) for name in variants if name not in every_seed]
    results = {}
    for index, (name, seed) in enumerate(plan):
        training = TrainingSettings(
            epochs=settings.epochs, batch_size=settings.batch_size, seed=seed,
            log1p=settings.log1p, anomalies=settings.anomalies, detrend=settings.detrend,
            validation_years=settings.validation_years,
        )
        model = {**settings.model, **variants[name]}
        with warnings.catch_warnings():
            if index:  # every run splits the same data: say how the window adapted once
                warnings.simplefilter("ignore", WindowAdapted)
            results[name, seed] = fit(data, run_directory(out_dir, name, seed), model,
                                      training, progress)
    return results


def _trained_with_every_seed(variants: dict[str, dict]) -> list[str]:
    """The models trained with every seed: the main ones and the dynamics ablations."""
    return [name for name in variants if name in MAIN_MODELS or name in DYNAMICS_ABLATIONS]


def _trained_models(
    data: DataSelection, fields: xr.DataArray, out_dir: Path, settings: EvaluationSettings,
    progress: bool, stages: dict[str, float],
) -> _Models:
    """Train every model of :func:`model_variants` and embed ``fields`` with each run (timed
    into ``stages``)."""
    config = ModelConfig(
        channels=fields.sizes["channel"],
        grid=(fields.sizes["lat"], fields.sizes["lon"]),
        **settings.model,
    )
    variants = model_variants(config, settings.ablations)
    with _timed(stages, STAGES[0]):
        results = _train(data, out_dir, settings, variants, progress)
    # The window the data let the runs train with (shorter than the requested on short data).
    config = dataclasses.replace(config, window=results[FA, 0].split["window"])
    embeddings, causal, inference, loaded = {}, {}, {}, {}
    every_seed = _trained_with_every_seed(variants)
    for (name, seed), result in results.items():
        with _timed(inference, (name, seed)), _timed(stages, STAGES[1]):
            run = TrainedRun(result.run_dir)
            embeddings[name, seed] = run.embed(fields)
        if name in every_seed:
            with _timed(stages, STAGES[1]):
                causal[name, seed] = run.embed(fields, align="end")
        if seed == 0:  # the robustness and mechanism maps use the first seed's models
            loaded[name] = run
    return _Models(config, variants, range(settings.seeds), results, embeddings, causal,
                   inference, loaded)


def _eof_baseline(fields: xr.DataArray, models: _Models, k: int) -> _Baseline:
    """EOFs fitted once on the training part of FA seed 0's run (its split and
    preprocessing), PCs and regimes."""
    run = models.results[FA, 0]
    preprocessor = Preprocessor.load(run.run_dir / PREPROCESSOR_FILE)
    preprocessed = preprocessor.transform(fields).load()
    train_fields = preprocessor.transform(Split.from_json(run.split).parts(fields)[0])
    eof = eof_embeddings(train_fields, preprocessed, models.config.embedding_dim)
    pcs = eof[EMBEDDING_VARIABLE].values
    separated = separated_modes(eof["explained_variance_ratio"].values, eof.attrs["training_steps"])
    return _Baseline(preprocessed, pcs, component_regimes(pcs, k), separated)


def _probe_targets(
    data: DataSelection, time: xr.DataArray, pcs: np.ndarray
) -> tuple[dict[str, np.ndarray], bool]:
    """The probe targets (see :func:`_targets`) and whether they are ground-truth factors."""
    source = standardize_axes(open_dataset(data.source))
    has_factors = all(f"factor_{name}" in source for name in FACTORS)
    return _targets(source if has_factors else None, pcs, time), has_factors


def _model_efficiency(
    models: _Models, name: str, batch: dict, target_loss: float
) -> dict[str, float]:
    """Size, cost and timings of model ``name`` (seed medians)."""
    config, settings = models.config, {**models.config.to_dict(), **models.variants[name]}
    autoencoder = build_autoencoder(ModelConfig(**settings))
    per_seed = [models.results[name, s] for s in models.seeds]
    steps = [result.train_steps for result in per_seed]
    epoch_seconds = [np.median(result.history["epoch_seconds"]) for result in per_seed]
    return {
        "encoder parameters": encoder_parameters(autoencoder),
        "encoder GMACs per window": sum(
            layer_macs(layer, config.window, *config.grid) for layer in encoder_layers(autoencoder)
        ) / 1e9,
        "seconds per training batch": float(np.median(np.divide(epoch_seconds, steps))),
        "seconds to embed the data": float(
            np.median([models.inference[name, s] for s in models.seeds])
        ),
        "peak training MiB": peak_training_memory(settings, batch),
        f"seconds to loss {target_loss:.3f}": _time_to_loss(models.history(name), target_loss),
    }


def _efficiency(
    models: _Models, preprocessed: xr.DataArray, batch_size: int
) -> dict[str, dict[str, float]]:
    """The efficiency table of the main models; the loss target is their worst final loss."""
    window = models.config.window
    starts = training_starts(preprocessed["time"], window, window)
    batch = WindowDataset(preprocessed, window, starts, batch_size)[0]
    target_loss = max(models.history(name)["loss"][-1] for name in MAIN_MODELS)
    return {name: _model_efficiency(models, name, batch, target_loss) for name in MAIN_MODELS}


def _regimes_on(points: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """KMeans regimes of ``points[rows]``, -1 on the other rows. ``(N,)``."""
    assigned = np.full(len(points), -1)
    assigned[rows] = kmeans(k, 0).fit_predict(points[rows])
    return assigned


def _stability(
    models: _Models, k: int
) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Agreement between seeds of each main model: the table, CKA matrices, seed-0 regimes."""
    stability, matrices, labels = {}, {}, {}
    for name in MAIN_MODELS:
        per_seed = [models.embeddings[name, s] for s in models.seeds]
        rows = _finite_rows(*per_seed)
        matrix = cka_matrix([embedding[rows] for embedding in per_seed])
        seed_labels = [_regimes_on(embedding, rows, k) for embedding in per_seed]
        pairs = list(itertools.combinations(range(len(per_seed)), 2))
        labels[name], matrices[name] = seed_labels[0], matrix
        stability[name] = {
            "mean CKA between seeds": float(np.mean([matrix[i, j] for i, j in pairs])),
            "mean ARI between seeds": float(
                np.mean([clustering_agreement(seed_labels[i], seed_labels[j]) for i, j in pairs])
            ),
        }
    return stability, matrices, labels


def _probes(
    models: _Models, targets: dict, pcs: np.ndarray, time: xr.DataArray
) -> dict[str, dict[str, tuple[float, float]]]:
    """Probe R^2 (mean, std over seeds) of the main models, EOF and the seasonal floor."""
    probes = {}
    for name in MAIN_MODELS:
        per_seed = [_probe_all(models.embeddings[name, s], targets) for s in models.seeds]
        probes[name] = {
            target: (float(np.mean([p[target] for p in per_seed])),
                     float(np.std([p[target] for p in per_seed])))
            for target in targets
        }
    floor = seasonal_features(year_fraction(time))
    for name, features in ((EOF, pcs), ("seasonal encoding alone", floor)):
        probes[name] = {t: (value, 0.0) for t, value in _probe_all(features, targets).items()}
    return probes


def _skill(models: _Models, baseline: _Baseline, targets: dict[str, np.ndarray],
           time: xr.DataArray, leads: tuple[int, ...]) -> tuple[dict, int]:
    """The skill table of the causal embeddings of every model trained with every seed,
    beside the EOF PCs at t and extended EOFs of the window; and where its held-out
    timesteps (the runs' validation part) start."""
    split = Split.from_json(models.results[FA, 0].split)
    config = models.config
    features = {
        name: [models.causal[name, seed] for seed in models.seeds]
        for name in _trained_with_every_seed(models.variants)
    }
    features[PCS_AT_T] = [baseline.pcs]
    features[EXTENDED_EOFS] = [
        extended_eofs(baseline.pcs, time, config.window, config.embedding_dim, split.training)
    ]
    return skill_table(features, targets, time, (0, *leads), split.cut), split.cut


def _skill_targets(pcs: np.ndarray, index_targets: dict[str, np.ndarray]) -> dict:
    """The leading EOF PCs and the user's indices: what the skill table forecasts."""
    return {**_targets(None, pcs, None), **index_targets}


def _mean_probe(features: np.ndarray, targets: dict) -> float:
    """Mean probe R^2 over ``targets``: how much known signal ``features`` carry."""
    return float(np.mean(list(_probe_all(features, targets).values())))


def robustness_timesteps(steps: int, sample: int) -> np.ndarray:
    """The ``(steps,)`` bool mask of the timesteps robustness re-embeds: every ``s``-th one,
    ``s = max(1, steps // sample)``, so between ``sample`` and ``2 * sample`` of them (all
    of them when there are fewer than ``2 * sample``)."""
    return np.arange(steps) % max(1, steps // sample) == 0


def _model_robustness(
    run: TrainedRun, clean: np.ndarray, fields: xr.DataArray, targets: dict,
    settings: EvaluationSettings,
) -> dict[str, list[tuple[float, float, float, float]]]:
    """``(level, CKA, ARI, probe R^2)`` of clean against perturbed embeddings, per perturbation.

    Each curve starts at level 0, the clean input. The mean probe R^2 of the targets from the
    perturbed embeddings is kept beside the agreement: an embedding that ignores its input
    agrees with itself under any perturbation, but carries no signal. The perturbed copies
    are embedded at :func:`robustness_timesteps` only; every figure, the clean probe of
    level 0 included, is measured on those timesteps (the regimes are fitted on all).
    """
    rows = np.isfinite(clean).all(axis=1)
    model = kmeans(settings.k, 0).fit(clean[rows])
    clean_labels = model.predict(clean[rows])
    sampled = robustness_timesteps(len(clean), settings.robustness_timesteps)
    start = (0.0, 1.0, 1.0, _mean_probe(np.where(sampled[:, None], clean, np.nan), targets))
    curves = {}
    for kind, perturb in PERTURBATIONS.items():
        levels = settings.noise_levels if kind == "gaussian noise" else settings.missing_fractions
        curves[kind] = [start]
        for level in levels:
            perturbed = run.embed(perturb(fields, level, seed=1), timesteps=sampled)
            both = rows & np.isfinite(perturbed).all(axis=1)
            agreement = clustering_agreement(
                clean_labels[both[rows]], model.predict(perturbed[both])
            )
            curves[kind].append((level, linear_cka(clean[both], perturbed[both]), agreement,
                                 _mean_probe(perturbed, targets)))
    return curves


def _robustness(
    models: _Models, fields: xr.DataArray, targets: dict, settings: EvaluationSettings
) -> dict:
    """The robustness curves of each main model's seed-0 run."""
    return {
        name: _model_robustness(
            models.loaded[name], models.embeddings[name, 0], fields, targets, settings
        )
        for name in MAIN_MODELS
    }


def _ablations(models: _Models, targets: dict) -> dict[str, dict[str, float]]:
    """Final losses and probe R^2 of FA and each ablation (seed 0)."""
    table = {}
    for name in models.variants:
        if name in (CONVLSTM, CONVLSTM_MATCHED):
            continue
        history = models.history(name)
        probed = _probe_all(models.embeddings[name, 0], targets)
        table[name] = {
            "final loss": history["loss"][-1],
            "final validation loss": history.get("val_loss", [float("nan")])[-1],
            **{f"R^2 {target}": value for target, value in probed.items()},
        }
    return table


def _regime_quality(
    models: _Models, labels: dict[str, np.ndarray], baseline: _Baseline, k: int
) -> dict[str, dict[str, float]]:
    """Cluster scores, persistence and pattern correlation with the EOF regimes, per model."""
    fields = baseline.preprocessed.values
    reference = _composites(fields, baseline.labels, k)
    table = {}
    for name, assigned in labels.items():
        points = baseline.pcs if name == EOF else models.embeddings[name, 0]
        valid = assigned >= 0
        table[name] = {
            **clustering_scores(points[valid], assigned[valid]),
            "mean persistence (steps)": float(persistence(assigned[valid], k).mean()),
            "pattern correlation with EOF regimes": pattern_correlation(
                _composites(fields[valid], assigned[valid], k), reference
            ),
        }
    return table


def _unseparated(separated: np.ndarray) -> list[str]:
    """The probed EOF PCs whose EOF is not separated from a neighbour."""
    return [f"EOF PC {i + 1}" for i in range(PROBED_PCS) if not separated[i]]


def _describe_targets(has_factors: bool, index_files: list[str]) -> str:
    described = "ground-truth factors" if has_factors else f"leading {PROBED_PCS} EOF PCs"
    return described + (" and the given indices" if index_files else "")


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
        raise InputError(f"seeds must be at least 2 to measure stability; got {settings.seeds}.")
    validation.positive_int(settings.robustness_timesteps, "robustness_timesteps")
    for lead in settings.leads or ():
        validation.positive_int(lead, "leads")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data, settings = _with_synthetic_data(data, out_dir, settings)
    fields = data.load().load()
    index_targets = _index_targets(settings.index_files, fields["time"])  # before any training
    stages: dict[str, float] = {}
    models = _trained_models(data, fields, out_dir, settings, progress, stages)
    with _timed(stages, STAGES[2]):
        baseline = _eof_baseline(fields, models, settings.k)
        targets, has_factors = _probe_targets(data, fields["time"], baseline.pcs)
        targets.update(index_targets)
        stability, cka_matrices, labels = _stability(models, settings.k)
        labels[EOF] = baseline.labels
        probes = _probes(models, targets, baseline.pcs, fields["time"])
        ablations = _ablations(models, targets)
        clustering = _regime_quality(models, labels, baseline, settings.k)
    with _timed(stages, STAGES[3]):
        robustness = _robustness(models, fields, targets, settings)
    with _timed(stages, STAGES[4]):
        efficiency = _efficiency(models, baseline.preprocessed, settings.batch_size)
    with _timed(stages, STAGES[5]):
        mechanisms = mechanism_maps(models.loaded[FA], fields, labels[FA], settings.k)
    leads = tuple(settings.leads or lead_steps(fields["time"]))
    with _timed(stages, STAGES[6]):
        skill, cut = _skill(models, baseline, _skill_targets(baseline.pcs, index_targets),
                            fields["time"], leads)
    return Evaluation(
        data=data, settings=settings, efficiency=efficiency, stability=stability,
        cka_matrices=cka_matrices, probes=probes,
        probe_targets=_describe_targets(has_factors, settings.index_files),
        unseparated_targets=[] if has_factors else _unseparated(baseline.separated),
        robustness=robustness, skill=skill, leads=(0, *leads), cut=cut, ablations=ablations,
        clustering=clustering,
        histories={name: models.history(name) for name in models.variants}, labels=labels,
        mechanisms=mechanisms, embeddings=models.embeddings, time=fields["time"],
        seconds=time.perf_counter() - started, stage_seconds=stages,
    )
