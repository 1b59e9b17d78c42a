"""The evaluation report: one Markdown file with tables and PNG plots, all from one run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

import faconvlstm
from faconvlstm.data.storage import atomic_path
from faconvlstm.evaluation.harness import (
    CONVLSTM,
    ENCODER_OFF,
    EXTENDED_EOFS,
    FA,
    PCS_AT_T,
    PROBED_PCS,
    STAGES,
    Evaluation,
    run_directory,
)
from faconvlstm.evaluation.skill import PERSISTENCE, seed_skill
from faconvlstm.pipeline import cluster
from faconvlstm.pipeline.embedding import EMBEDDING_VARIABLE
from faconvlstm.pipeline.plots import (
    colour_bar,
    draw_field,
    map_figure,
    panel_columns,
    save_png,
    symmetric_limit,
)

REPORT_FILE = "report.md"
#: Every figure of the skill table, per seed (JSON).
SKILL_FILE = "skill.json"


def _number(value) -> str:
    if isinstance(value, tuple):
        mean, spread = value
        return f"{mean:.3f} ± {spread:.3f}" if spread else f"{mean:.3f}"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if isinstance(value, float) and not math.isfinite(value):
        return "not reached"
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"


def markdown_table(rows: dict[str, dict], first: str = "model") -> list[str]:
    """``{row: {column: value}}`` as Markdown lines."""
    columns = list(next(iter(rows.values())))
    lines = [
        "| " + " | ".join([first, *columns]) + " |",
        "| --- |" + " ---: |" * len(columns),
    ]
    for name, values in rows.items():
        lines.append("| " + " | ".join([name, *(_number(values[c]) for c in columns)]) + " |")
    return lines + [""]


def _figure(figsize: tuple[float, float], rows: int = 1, columns: int = 1, **subplots):
    """A constrained-layout figure of its own (no pyplot state) and its axes."""
    figure = Figure(figsize=figsize, layout="constrained")
    return figure, figure.subplots(rows, columns, **subplots)


def _save(figure: Figure, path: Path) -> str:
    return save_png(figure, path).name


def plot_losses(histories: dict[str, dict[str, list[float]]], path: Path) -> str:
    figure, axis = _figure((7, 4))
    for name, history in histories.items():
        axis.plot(np.arange(1, len(history["loss"]) + 1), history["loss"], label=name)
    axis.set(xlabel="epoch", ylabel="training loss (seed 0)", yscale="log")
    axis.legend(fontsize=7)
    return _save(figure, path)


ROBUSTNESS_ROWS = ("CKA clean vs perturbed", "ARI of regimes", "mean probe R^2")


def plot_robustness(robustness: dict, path: Path) -> str:
    """One column per perturbation; rows: CKA, ARI and the probes of perturbed embeddings."""
    kinds = list(next(iter(robustness.values())))
    figure, axes = _figure((4 * len(kinds), 8), len(ROBUSTNESS_ROWS), len(kinds), squeeze=False)
    for column, kind in enumerate(kinds):
        for name, curves in robustness.items():
            levels, *measures = zip(*curves[kind])
            for row, values in enumerate(measures):
                axes[row, column].plot(levels, values, marker="o", label=name)
        for row, label in enumerate(ROBUSTNESS_ROWS):
            axes[row, column].set(ylabel=label)
            axes[row, column].set_ylim(-0.05 if row < 2 else None, 1.02)  # R^2 may be < 0
        axes[0, column].set(title=kind)
        axes[-1, column].set(xlabel="level / fraction")
    axes[0, 0].legend(fontsize=7)
    return _save(figure, path)


def plot_cka(matrices: dict[str, np.ndarray], path: Path) -> str:
    figure, axes = _figure((3.4 * len(matrices), 3), 1, len(matrices), squeeze=False)
    for axis, (name, matrix) in zip(axes[0], matrices.items()):
        image = axis.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
        axis.set(title=name, xlabel="seed", ylabel="seed")
        for (i, j), value in np.ndenumerate(matrix):
            axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="w")
    figure.colorbar(image, ax=axes[0, -1], label="linear CKA")
    return _save(figure, path)


def plot_channel_weights(mechanisms: xr.Dataset, path: Path) -> str:
    """SE weight of each bottleneck channel per regime, beside the variables feeding it."""
    weights, projection = mechanisms["channel_weights"], mechanisms["projection"]
    figure, (left, right) = _figure((10, 3.4), 1, 2)
    image = left.imshow(weights.values, cmap="viridis", aspect="auto")
    for (i, j), value in np.ndenumerate(weights.values):
        left.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="w")
    left.set(title="squeeze-excitation weight per regime", xlabel="bottleneck channel",
             ylabel="regime", yticks=range(weights.sizes["cluster"]))
    figure.colorbar(image, ax=left)
    limit = symmetric_limit(projection.values)
    image = right.imshow(projection.values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    right.set(title="input projection (variables -> bottleneck)", xlabel="bottleneck channel",
              yticks=range(projection.sizes["channel"]), yticklabels=projection["channel"].values)
    figure.colorbar(image, ax=right)
    return _save(figure, path)


def plot_attention(mechanisms: xr.Dataset, path: Path) -> str:
    """Attention received by each cell per regime, relative to uniform (1), as maps on one
    scale symmetric about 1."""
    attention = mechanisms["attention"]
    k = attention.sizes["cluster"]
    columns = panel_columns(attention["lat"], attention["lon"], k)
    figure, axes = map_figure(attention["lat"], attention["lon"], math.ceil(k / columns), columns)
    spread = symmetric_limit(attention.values, center=1.0)
    for regime, axis in enumerate(axes.flat):
        if regime >= k:
            axis.set_visible(False)
            continue
        mesh = draw_field(axis, attention.isel(cluster=regime), 1.0, spread)
        axis.set_title(f"regime {regime}", fontsize=8)
    colour_bar(figure, mesh, axes.flat[:k], "attention received / uniform")
    return _save(figure, path)


def _mechanism_lines(mechanisms: xr.Dataset, out_dir: Path) -> list[str]:
    lines = [
        "### Inside FA (seed 0): squeeze-excitation weights and axial attention per regime",
        "",
        ("The first FAConvLSTM2D layer inspected on every day's window and averaged over the "
        "days of each FA regime (numbered as in the composite maps below). Left: the SE "
        "weight of each bottleneck channel; right: which variables feed that channel. "
        "Attention maps: the share of attention each cell received at the latest attended "
        "step, relative to uniform attention (1)."),
        "",
    ]
    if "channel_weights" in mechanisms:
        image = plot_channel_weights(mechanisms, out_dir / "se_weights.png")
        lines += [f"![SE weights per regime]({image})", ""]
    if "attention" in mechanisms:
        image = plot_attention(mechanisms, out_dir / "attention_maps.png")
        lines += [f"![attention per regime]({image})", ""]
    return lines


def _header(evaluation: Evaluation, command: str) -> list[str]:
    data, settings = evaluation.data, evaluation.settings
    return [
        "# faconvlstm evaluation report",
        "",
        f"- Command: `{command}`",
        f"- Data: `{data.source}`, variables {', '.join(data.variables)}"
        + (f", region {data.region}" if data.region else ""),
        (f"- Seeds: {settings.seeds} (mechanism ablations: seed 0), epochs: {settings.epochs}, "
        f"anomalies: {settings.anomalies}, K = {settings.k}"),
        (f"- Backend: {faconvlstm.backend()}, faconvlstm {faconvlstm.__version__}; "
        f"wall time {evaluation.seconds / 60:.1f} min"),
        "- Every figure below was computed in this run.",
        "",
        *_stage_lines(evaluation),
    ]


def _stage_lines(evaluation: Evaluation) -> list[str]:
    """The wall time of each stage, and of the measurements after training against it."""
    stages = evaluation.stage_seconds
    if not stages:
        return []
    after = sum(seconds for stage, seconds in stages.items() if stage != STAGES[0])
    rows = {stage: {"min": seconds / 60} for stage, seconds in stages.items()}
    rows["all measurements after training"] = {"min": after / 60}
    return ["Wall time by stage:", "", *markdown_table(rows, first="stage")]


def _efficiency_and_stability(evaluation: Evaluation, out_dir: Path) -> list[str]:
    return [
        "## Efficiency (seed medians; times on this machine, same process)",
        "",
        *markdown_table(evaluation.efficiency),
        f"![training loss]({plot_losses(evaluation.histories, out_dir / 'losses.png')})",
        "",
        "## Stability across seeds",
        "",
        ("Linear CKA between the (centred) embeddings of models trained with different seeds, and the "
        "adjusted Rand index between their KMeans regimes (1 = identical up to rotation / "
        "relabeling). EOF is deterministic and not listed."),
        "",
        *markdown_table(evaluation.stability),
        f"![CKA between seeds]({plot_cka(evaluation.cka_matrices, out_dir / 'cka_seeds.png')})",
        "",
    ]


def _interpretability(evaluation: Evaluation, out_dir: Path) -> list[str]:
    return [
        f"## Interpretability: linear-probe R^2 of the {evaluation.probe_targets}",
        "",
        ("Ridge probes, 5 contiguous folds (blocked: daily data are autocorrelated); mean ± "
        "standard deviation over seeds; every timestep embedded from the window where it "
        "sits nearest the center. The seasonal encoding alone is the floor."),
        "",
        *markdown_table(evaluation.probes),
        *_unseparated_lines(evaluation.unseparated_targets),
        *_mechanism_lines(evaluation.mechanisms, out_dir),
    ]


def _unseparated_lines(targets: list[str]) -> list[str]:
    if not targets:
        return []
    return [
        (f"Not separated: {', '.join(targets)}. By North's rule of thumb each of their EOFs "
         "has an eigenvalue within its sampling error (l * sqrt(2 / N), N the training steps) "
         "of a neighbour's, so the data fix only the subspace of such neighbours, not each "
         "mode: read their probes together."),
        "",
    ]


SKILL_PROTOCOLS = {
    "held out": ("the probe is fitted on the training timesteps (targets before the validation "
                 "part) and scored on the validation timesteps, which no model saw as input or "
                 "as target (early stopping watched their loss)"),
    "blocked folds": ("5 contiguous folds over every timestep, as the probes above; the trained "
                      "models have fitted the futures of the folds inside their training part, "
                      "so this protocol flatters them against the baselines"),
}


def _pc_names() -> list[str]:
    return [f"EOF PC {i + 1}" for i in range(PROBED_PCS)]


def _skill_rows(scores: dict, targets: list[str], leads: tuple[int, ...]) -> dict:
    """``{method: {"lead k": (mean, std) of the skill over targets, across seeds}}``."""
    rows = {}
    for method, per_target in scores.items():
        rows[method] = {}
        for lead in leads:
            values = seed_skill(per_target, targets, (lead,))
            rows[method][f"lead {lead}"] = (float(values.mean()), float(values.std()))
    return rows


def _skill_tables(evaluation: Evaluation) -> list[str]:
    lines = []
    indices = sorted({target for method in evaluation.skill.values() for scores in
                      method.values() for target, _ in scores} - set(_pc_names()))
    for protocol, scores in evaluation.skill.items():
        lines += [f"### {protocol.capitalize()}: {SKILL_PROTOCOLS[protocol]}", "",
                  f"Mean R^2 of EOF PC 1-{PROBED_PCS} (mean ± std over seeds):", "",
                  *markdown_table(_skill_rows(scores, _pc_names(), evaluation.leads),
                                  first="features at t")]
        for index in indices:
            lines += [f"R^2 of {index}:", "",
                      *markdown_table(_skill_rows(scores, [index], evaluation.leads),
                                      first="features at t")]
        lines += [*_skill_verdicts(scores, evaluation.leads, indices), ""]
    return lines


def _skill_verdicts(scores: dict, leads: tuple[int, ...], indices: list[str]) -> list[str]:
    """What the table says of the claims: the encoder's share, FA against the baselines and
    the twin, and the state at lead 0."""
    later = tuple(lead for lead in leads if lead >= 3) or leads[-1:]
    middle = leads[2:4] if len(leads) > 3 else later
    pcs, lines = _pc_names(), []
    if ENCODER_OFF in scores:
        fa, off = seed_skill(scores[FA], pcs, middle), seed_skill(scores[ENCODER_OFF], pcs, middle)
        spread = 2 * max(fa.std(), off.std())
        lines.append(
            f"- The encoder's share (PC 1-{PROBED_PCS}, leads {', '.join(map(str, middle))}): "
            f"FA {fa.mean():.3f}, encoder off {off.mean():.3f}, difference "
            f"{fa.mean() - off.mean():+.3f} against 2 standard deviations of the seeds "
            f"{spread:.3f}."
        )
    for target, names in ((f"PC 1-{PROBED_PCS}", pcs), *((index, [index]) for index in indices)):
        fa = seed_skill(scores[FA], names, later).mean()
        others = [PCS_AT_T, EXTENDED_EOFS, PERSISTENCE, CONVLSTM]
        beaten = [m for m in others if m in scores and fa > seed_skill(scores[m], names, later).mean()]
        lost = [m for m in others if m in scores and m not in beaten]
        lines.append(
            f"- {target}, leads {', '.join(map(str, later))}: FA {fa:.3f}; above: "
            f"{', '.join(beaten) or 'none'}; at or below: {', '.join(lost) or 'none'}."
        )
    same = [float(np.mean(scores[FA][pc, 0])) for pc in pcs]
    lines.append(f"- The state at t (lead 0) of PC 1-{PROBED_PCS}: "
                 f"{' / '.join(f'{value:.3f}' for value in same)}.")
    return lines


def _skill(evaluation: Evaluation) -> list[str]:
    return [
        "## Skill at leads: what the causal embedding of step t says about step t + k",
        "",
        ("Every timestep is embedded from the window that ends at it (causal: nothing after "
         "it is seen). Ridge probes read the leading EOF PCs (and the given indices) at t + k "
         "from the features at t. Baselines: the 16 EOF PCs of step t (the regression of a "
         "linear inverse model), extended EOFs of the same window (16 components of the "
         "time-delay embedding of those PCs over the window, fewer when the training part "
         "holds fewer windows) and persistence. Every method "
         f"is scored on the same timesteps; the held-out ones are steps {evaluation.cut} to "
         f"{evaluation.time.size - 1}. "
         "The dynamics ablations switch off the recurrent encoder (the head sees the input "
         "frames alone), the input skip, or the forecast objective."),
        "",
        *_skill_tables(evaluation),
    ]


def _robustness_and_ablations(evaluation: Evaluation, out_dir: Path) -> list[str]:
    return [
        "## Robustness to perturbed inputs (seed 0, centred embeddings)",
        "",
        ("CKA between embeddings of clean and perturbed inputs, agreement (ARI) of the "
        "regimes the clean KMeans assigns to them, and the mean probe R^2 of the targets "
        "above from the perturbed embeddings: agreement without signal is not robustness."),
        "",
        f"![robustness]({plot_robustness(evaluation.robustness, out_dir / 'robustness.png')})",
        "",
        *_robustness_table(evaluation.robustness),
        "## Ablations (seed 0): each FA mechanism switched off or changed",
        "",
        *markdown_table(evaluation.ablations),
    ]


def _regime_maps(evaluation: Evaluation, out_dir: Path) -> str | None:
    """Cluster FA seed 0's embeddings into ``fa_regimes.nc``; the composite map's name."""
    embeddings = xr.Dataset(
        {EMBEDDING_VARIABLE: (("time", "embedding"), evaluation.embeddings[FA, 0])},
        coords={"time": evaluation.time},
        attrs={"run_dir": str(run_directory(out_dir, FA, 0).resolve())},
    )
    regimes = cluster(embeddings, evaluation.settings.k, out_dir / "fa_regimes.nc")
    return regimes.files[-1].name if len(regimes.files) > 1 else None


def _regimes(evaluation: Evaluation, maps: str | None) -> list[str]:
    lines = [
        "## Regimes",
        "",
        ("KMeans (K as above) on each model's centred embeddings (seed 0) and the standard "
        "baseline, "
        "KMeans on the leading area-weighted EOF PCs of the anomalies. Pattern correlation: "
        "regime composites against the EOF regimes' after one-to-one matching."),
        "",
        *markdown_table(evaluation.clustering),
    ]
    if maps:
        lines += [
            f"FA regime composites (anomalies against the mean of all days): ![maps]({maps})", ""
        ]
    return lines


def write_report(evaluation: Evaluation, out_dir: Path, command: str) -> Path:
    """Write ``out_dir/report.md`` and its PNGs; returns the report's path."""
    maps = _regime_maps(evaluation, out_dir)
    lines = [
        *_header(evaluation, command),
        *_efficiency_and_stability(evaluation, out_dir),
        *_interpretability(evaluation, out_dir),
        *_skill(evaluation),
        *_robustness_and_ablations(evaluation, out_dir),
        *_regimes(evaluation, maps),
    ]
    path = out_dir / REPORT_FILE
    with atomic_path(path) as temporary:
        temporary.write_text("\n".join(lines) + "\n")
    _write_skill(evaluation, out_dir / SKILL_FILE)
    return path


def _write_skill(evaluation: Evaluation, path: Path) -> None:
    """Every skill figure, per seed: ``{protocol: {method: {target: {lead: [R^2]}}}}``."""
    table = {
        protocol: {
            method: {
                target: {str(lead): per_target[target, lead] for lead in evaluation.leads}
                for target in dict.fromkeys(target for target, _ in per_target)
            }
            for method, per_target in scores.items()
        }
        for protocol, scores in evaluation.skill.items()
    }
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps({"leads": list(evaluation.leads),
                                         "held_out_from_step": evaluation.cut,
                                         "skill": table}, indent=1) + "\n")


def _robustness_table(robustness: dict) -> list[str]:
    """One row per model on clean inputs, then one per perturbation and level."""
    rows = {}
    for name, curves in robustness.items():
        for kind, curve in curves.items():
            for level, cka, agreement, probe in curve:
                row = f"{name}, clean" if level == 0 else f"{name}, {kind} {level:g}"
                rows[row] = {"CKA": cka, "ARI": agreement, "mean probe R^2": probe}
    return markdown_table(rows, first="model, perturbation")
