"""Skill at leads: how well features known at step t predict a target at step t + k.

The features are causal (nothing after t: the embedding of the window that ends at t, the
EOF PCs of step t, extended EOFs of the window ending at t); the targets are the leading EOF
PCs and climate indices. A ridge probe (:func:`~faconvlstm.evaluation.probes.probe_r2`,
blocked folds) reads the target at t + k from the features at t. Leads never cross a gap
in time: a target k steps later in another gap-free run (the next winter of a season subset)
is missing. Persistence, the forecast ``target(t + k) = target(t)``, needs no fitting.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from sklearn.decomposition import PCA
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from faconvlstm.data.calendar import contiguous_segments
from faconvlstm.errors import InputError
from faconvlstm.evaluation.probes import RIDGE_ALPHAS, probe_r2
from faconvlstm.validation import positive_int


def at_lead(values: np.ndarray, time: xr.DataArray, lead: int) -> np.ndarray:
    """``values[t + lead]`` at row ``t`` when both lie in one gap-free run, else NaN.

    ``values`` is ``(N, ...)`` along ``time``; returns float64 of the same shape.
    """
    values = np.asarray(values, dtype="float64")
    shifted = np.full_like(values, np.nan)
    for run in contiguous_segments(time):
        if run.stop - run.start > lead:
            shifted[run.start : run.stop - lead] = values[run.start + lead : run.stop]
    return shifted


def delay_embedding(values: np.ndarray, time: xr.DataArray, window: int) -> np.ndarray:
    """``[values[t], values[t-1], ..., values[t-window+1]]`` at row ``t``: ``(N, m * window)``
    from ``values (N, m)``; NaN where the window would reach before the start of its
    gap-free run."""
    window = positive_int(window, "window")
    values = np.asarray(values, dtype="float64")
    lags = [np.full_like(values, np.nan) for _ in range(window)]
    for run in contiguous_segments(time):
        for lag, lagged in enumerate(lags):
            if run.stop - run.start > lag:
                lagged[run.start + lag : run.stop] = values[run.start : run.stop - lag]
    return np.concatenate(lags, axis=1)


def extended_eofs(
    pcs: np.ndarray, time: xr.DataArray, window: int, modes: int, training: slice
) -> np.ndarray:
    """Extended EOF principal components ``(N, modes)``: a PCA of the causal delay embedding
    (:func:`delay_embedding`) of the EOF PCs ``pcs (N, m)`` over ``window`` steps, fitted on
    the rows of ``training`` with a full window (time-delay embedding, as in multichannel
    singular spectrum analysis); NaN where the window is not full. Short training parts
    give fewer modes: at most one less than their full windows.

    The lags run into the past, so the components of step t use nothing after it.
    """
    embedded = delay_embedding(pcs, time, window)
    full = np.isfinite(embedded).all(axis=1)
    fitted = full.copy()
    fitted[np.arange(len(full))[training].max() + 1 :] = False
    fitted[: np.arange(len(full))[training].min()] = False
    if fitted.sum() < 2:
        raise InputError(
            f"Extended EOFs over a window of {window} steps need at least 2 full windows in "
            f"the training part; it has {int(fitted.sum())}."
        )
    modes = min(modes, int(fitted.sum()) - 1)
    pca = PCA(modes, random_state=0).fit(embedded[fitted])
    components = np.full((len(embedded), modes), np.nan)
    components[full] = pca.transform(embedded[full])
    return components


def persistence_r2(target: np.ndarray, time: xr.DataArray, lead: int,
                   rows: np.ndarray | None = None) -> float:
    """R^2 of the forecast ``target(t + lead) = target(t)`` over ``rows`` (a ``(N,)`` bool
    mask; default all) where both are finite. ``target`` is ``(N,)``."""
    target = np.asarray(target, dtype="float64")
    future = at_lead(target, time, lead)
    usable = np.isfinite(target) & np.isfinite(future)
    if rows is not None:
        usable &= rows
    return float(r2_score(future[usable], target[usable]))


def lead_r2(features: np.ndarray, target: np.ndarray, time: xr.DataArray, lead: int,
            rows: np.ndarray | None = None) -> float:
    """Blocked-fold ridge probe R^2 of ``target (N,)`` at ``t + lead`` from ``features (N, d)``
    at ``t``, over ``rows`` (a ``(N,)`` bool mask; default all) where both are finite."""
    future = at_lead(target, time, lead)
    usable = np.isfinite(features).all(axis=1) & np.isfinite(future)
    if rows is not None:
        usable &= rows
    return probe_r2(np.asarray(features, dtype="float64")[usable], future[usable])


def common_rows(features: dict[str, np.ndarray]) -> np.ndarray:
    """The rows ``(N,)`` where every feature set of ``features`` (each ``(N, d)``) is finite:
    every method is scored on the same timesteps."""
    return np.all([np.isfinite(values).all(axis=1) for values in features.values()], axis=0)


def held_out_r2(features: np.ndarray, target: np.ndarray, time: xr.DataArray, lead: int,
                cut: int, rows: np.ndarray | None = None) -> float:
    """R^2 on the held-out timesteps ``t >= cut`` of a ridge probe of ``target (N,)`` at
    ``t + lead`` from ``features (N, d)`` at ``t``, fitted on the timesteps whose target
    ``t + lead`` lies before ``cut``; over ``rows`` (default all) where both are finite.

    Nothing scored was seen in fitting: neither by the probe nor, when ``cut`` is where a
    model's validation part starts, by the model (as input or as target)."""
    future = at_lead(target, time, lead)
    usable = np.isfinite(features).all(axis=1) & np.isfinite(future)
    if rows is not None:
        usable &= rows
    index = np.arange(len(future))
    fitted, scored = usable & (index + lead < cut), usable & (index >= cut)
    if fitted.sum() < 2 or scored.sum() < 2:
        return float("nan")
    probe = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))
    probe.fit(features[fitted], future[fitted])
    return float(r2_score(future[scored], probe.predict(features[scored])))


#: How skill is scored: on held-out timesteps no model or probe saw (:func:`held_out_r2`),
#: and by blocked folds over every timestep (:func:`lead_r2`), where a trained model has
#: seen the targets of the folds in its training part.
PROTOCOLS = ("held out", "blocked folds")
#: The name of the forecast ``target(t + k) = target(t)`` among the methods of a skill table.
PERSISTENCE = "persistence"


def skill_table(
    features: dict[str, list[np.ndarray]], targets: dict[str, np.ndarray], time: xr.DataArray,
    leads: tuple[int, ...], cut: int,
) -> dict[str, dict[str, dict[tuple[str, int], list[float]]]]:
    """Skill at ``leads`` of every method, by protocol: ``{protocol: {method: {(target,
    lead): [R^2 of each seed]}}}``.

    ``features`` maps a method to its causal features ``(N, d)``, one array per seed (one
    for a deterministic baseline); ``targets`` maps a name to a series ``(N,)``. Every method
    is scored on the same timesteps (:func:`common_rows`); :data:`PERSISTENCE` is added.
    The held-out protocol needs a validation part (``cut`` below ``N``); it is left out
    otherwise.
    """
    rows = common_rows({f"{m} {i}": f for m, arrays in features.items()
                        for i, f in enumerate(arrays)})
    protocols = PROTOCOLS if cut < len(time) else PROTOCOLS[1:]
    table = {}
    for protocol in protocols:
        def score(values, target, lead, protocol=protocol):
            if protocol == "held out":
                return held_out_r2(values, target, time, lead, cut, rows)
            return lead_r2(values, target, time, lead, rows)

        table[protocol] = {
            method: {
                (name, lead): [score(f, target, lead) for f in arrays]
                for name, target in targets.items() for lead in leads
            }
            for method, arrays in features.items()
        }
        scored = rows & (np.arange(len(rows)) >= cut) if protocol == "held out" else rows
        table[protocol][PERSISTENCE] = {
            (name, lead): [persistence_r2(target, time, lead, scored) if lead else 1.0]
            for name, target in targets.items() for lead in leads
        }
    return table


def seed_skill(scores: dict[tuple[str, int], list[float]], targets: list[str],
               leads: tuple[int, ...]) -> np.ndarray:
    """One method's skill averaged over ``targets`` and ``leads``, for each seed. ``(seeds,)``."""
    return np.mean([scores[target, lead] for target in targets for lead in leads], axis=0)
