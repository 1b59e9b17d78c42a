"""The standalone FAConvLSTM2D layer and its building blocks (imports nothing else of ours)."""

from faconvlstm.layers.attention import AxialAttention2D, attention_steps
from faconvlstm.layers.cell import FAConvLSTM2DCell
from faconvlstm.layers.conv_lstm import FAConvLSTM2D
from faconvlstm.layers.excitation import SqueezeExcitation
from faconvlstm.layers.gates import InputProjection, PeepholeGates
from faconvlstm.layers.positional import SeasonalPositionalEncoding
from faconvlstm.layers.spatial_mixing import MultiScaleDepthwiseMixing
from faconvlstm.layers.subspace import SubspaceHead
from faconvlstm.layers.temporal import TemporalSelfAttention

__all__ = [
    "AxialAttention2D",
    "FAConvLSTM2D",
    "FAConvLSTM2DCell",
    "InputProjection",
    "MultiScaleDepthwiseMixing",
    "PeepholeGates",
    "SeasonalPositionalEncoding",
    "SqueezeExcitation",
    "SubspaceHead",
    "TemporalSelfAttention",
    "attention_steps",
]
