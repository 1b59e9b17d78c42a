"""Choice of the Keras backend.

Keras reads ``KERAS_BACKEND`` once, when it is first imported. If neither that variable
nor ``~/.keras/keras.json`` names a backend, :func:`choose_default_backend` picks the
one measured fastest for training on CPU (PyTorch; see BENCHMARKS.md), falling back to
JAX when PyTorch is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import warnings
from pathlib import Path

#: Backends in order of preference when nothing else decides (fastest CPU training first).
PREFERRED_BACKENDS = ("torch", "jax", "tensorflow")

#: Backends whose CPU training we measured to be an order of magnitude slower.
SLOW_CPU_BACKENDS = ("jax",)


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _configured_backend() -> str | None:
    """The backend named by ``KERAS_BACKEND`` or by the Keras config file, if any.

    Keras writes ``"tensorflow"`` into a new ``keras.json`` whenever it is first imported
    without ``KERAS_BACKEND``; a file naming a backend that is not installed is therefore
    not taken as a choice.
    """
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    try:
        named = json.loads((keras_home / "keras.json").read_text()).get("backend")
    except (OSError, ValueError, AttributeError):
        return None
    return named if named and _installed(named) else None


def choose_default_backend() -> str | None:
    """Set ``KERAS_BACKEND`` to the fastest installed backend if nothing chose one yet.

    Returns the backend set, or None when Keras is already imported or the user configured
    an installed backend (then Keras' own choice stands).
    """
    if "keras" in sys.modules or _configured_backend():
        return None
    for name in PREFERRED_BACKENDS:
        if _installed(name):
            os.environ["KERAS_BACKEND"] = name
            return name
    return None


def backend() -> str:
    """The Keras backend faconvlstm runs on: ``"torch"``, ``"jax"`` or ``"tensorflow"``."""
    import keras

    return keras.backend.backend()


def runs_on_cpu() -> bool:
    """Whether the active backend computes on the CPU (no GPU or TPU in use)."""
    name = backend()
    if name == "torch":
        import torch

        return not torch.cuda.is_available()
    if name == "jax":
        import jax

        return jax.default_backend() == "cpu"
    import tensorflow as tf

    return not tf.config.list_physical_devices("GPU")


def warn_if_slow_backend() -> None:
    """Warn when the active backend trains this layer slowly on the CPU it runs on."""
    if backend() in SLOW_CPU_BACKENDS and runs_on_cpu():
        warnings.warn(
            f"faconvlstm runs on the Keras '{backend()}' backend on CPU, whose convolution "
            "gradients are much slower than PyTorch's; set KERAS_BACKEND=torch for CPU "
            "training.",
            stacklevel=2,
        )
