"""Measuring what the embeddings hold: probes, and the end-to-end demo."""

from faconvlstm.evaluation.probes import probe_r2, seasonal_features

__all__ = ["probe_r2", "seasonal_features"]
