"""The representation model: recurrent encoder -> subspace head -> temporal attention -> embeddings."""

from faconvlstm.models.autoencoder import (
    ModelConfig,
    build_autoencoder,
    embedding_model,
    encoder_layers,
    encoder_parameters,
)
from faconvlstm.models.decoder import FrameDecoder
from faconvlstm.models.losses import MaskedReconstructionLoss

__all__ = [
    "FrameDecoder",
    "MaskedReconstructionLoss",
    "ModelConfig",
    "build_autoencoder",
    "embedding_model",
    "encoder_layers",
    "encoder_parameters",
]
