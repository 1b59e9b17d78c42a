"""From a climate file to embeddings and regimes: ``fit``, ``embed``, ``cluster``; and
``FAEmbedding``, the same on xarray objects."""

from faconvlstm.pipeline.clustering import ClusterResult, cluster
from faconvlstm.pipeline.embedding import embed
from faconvlstm.pipeline.estimator import FAEmbedding
from faconvlstm.pipeline.runs import DataSelection, TrainingSettings
from faconvlstm.pipeline.training import TrainingResult, fit

__all__ = [
    "ClusterResult",
    "DataSelection",
    "FAEmbedding",
    "TrainingResult",
    "TrainingSettings",
    "cluster",
    "embed",
    "fit",
]
