"""faconvlstm: Factorized-Attention ConvLSTM layers and pipelines for gridded climate data."""

import importlib.metadata

from faconvlstm.backends import backend, choose_default_backend, warn_if_slow_backend

choose_default_backend()

from faconvlstm.errors import InputError
from faconvlstm.layers import FAConvLSTM2D

warn_if_slow_backend()

__all__ = ["FAConvLSTM2D", "InputError", "backend"]
__version__ = importlib.metadata.version("faconvlstm")
