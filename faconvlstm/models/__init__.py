"""The representation model: recurrent encoder -> subspace head -> temporal attention -> embeddings."""

from faconvlstm.models.autoencoder import (
    INPUT_NAMES,
    ModelConfig,
    build_autoencoder,
    embedding_model,
)
from faconvlstm.models.decoder import FrameDecoder
from faconvlstm.models.losses import MaskedReconstructionLoss

__all__ = [
    "INPUT_NAMES",
    "FrameDecoder",
    "MaskedReconstructionLoss",
    "ModelConfig",
    "build_autoencoder",
    "embedding_model",
]
