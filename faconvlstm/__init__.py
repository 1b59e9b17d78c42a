"""faconvlstm: Factorized-Attention ConvLSTM layers and pipelines for gridded climate data."""

import importlib.metadata

from faconvlstm.backends import backend, choose_default_backend, warn_if_slow_backend

choose_default_backend()

from faconvlstm.layers import FAConvLSTM2D, FAConvLSTM2DCell

warn_if_slow_backend()

__all__ = ["FAConvLSTM2D", "FAConvLSTM2DCell", "backend"]
__version__ = importlib.metadata.version("faconvlstm")
