"""From a climate file to embeddings and regimes: ``fit``, ``embed``, ``cluster``."""

from faconvlstm.pipeline.clustering import ClusterResult, cluster
from faconvlstm.pipeline.embedding import embed
from faconvlstm.pipeline.runs import DataSelection, TrainingSettings
from faconvlstm.pipeline.training import TrainingResult, fit

__all__ = [
    "ClusterResult",
    "DataSelection",
    "TrainingResult",
    "TrainingSettings",
    "cluster",
    "embed",
    "fit",
]
