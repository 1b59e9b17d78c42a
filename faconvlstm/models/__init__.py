"""The representation model: recurrent encoder -> subspace head -> temporal attention -> embeddings."""

from faconvlstm.models.autoencoder import (
    ModelConfig,
    build_autoencoder,
    embedding_model,
    encoder_layers,
    encoder_parameters,
)
from faconvlstm.models.decoder import FrameDecoder
from faconvlstm.models.forecast import LatentLeads
from faconvlstm.models.losses import MaskedLeadLoss

__all__ = [
    "FrameDecoder",
    "LatentLeads",
    "MaskedLeadLoss",
    "ModelConfig",
    "build_autoencoder",
    "embedding_model",
    "encoder_layers",
    "encoder_parameters",
]
