"""Measuring what the embeddings hold: probes, similarity, perturbations, EOF baselines, demo."""

from faconvlstm.evaluation.eof import eof_embeddings, eof_regimes
from faconvlstm.evaluation.perturbations import add_noise, drop_cells, drop_timesteps
from faconvlstm.evaluation.probes import probe_r2, seasonal_features
from faconvlstm.evaluation.similarity import cka_matrix, clustering_agreement, linear_cka

__all__ = [
    "add_noise",
    "cka_matrix",
    "clustering_agreement",
    "drop_cells",
    "drop_timesteps",
    "eof_embeddings",
    "eof_regimes",
    "linear_cka",
    "probe_r2",
    "seasonal_features",
]
