"""The standalone FAConvLSTM2D layer and the representation layers built on it.

Imports nothing else of ours but :mod:`faconvlstm.errors` and :mod:`faconvlstm.validation`.
Every layer exported here is complete: registered for ``.keras`` serialization, with a
``get_config`` that round-trips its arguments. The mechanisms inside FAConvLSTM2D (one a
module: gates, spatial mixing, excitation, attention, the cell) are internal to it.
"""

from faconvlstm.layers.conv_lstm import FAConvLSTM2D
from faconvlstm.layers.positional import SeasonalPositionalEncoding
from faconvlstm.layers.subspace import SubspaceHead
from faconvlstm.layers.temporal import TemporalSelfAttention

__all__ = [
    "FAConvLSTM2D",
    "SeasonalPositionalEncoding",
    "SubspaceHead",
    "TemporalSelfAttention",
]
