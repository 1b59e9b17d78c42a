"""Peak training memory, measured in fresh processes, against the model's own estimate.

A loose check only: the estimate's accuracy is measured by benchmarks/memory_estimate.py
(figures in BENCHMARKS.md). Each measurement is a fresh process, so the measured FA model
serves both tests.
"""

import numpy as np
import pytest

from faconvlstm.evaluation.memory import peak_training_memory
from faconvlstm.models import ModelConfig
from faconvlstm.models.autoencoder import training_memory_bytes
from tests.conftest import on_the_default_backend_only
from tests.models.test_autoencoder import random_inputs

pytestmark = on_the_default_backend_only("a measuring tool; each measurement takes 45 s on JAX")

BATCH = 4


def measured_peak_bytes(config: ModelConfig, batch: int = BATCH) -> float:
    inputs = random_inputs(np.random.default_rng(0), config, batch)
    return peak_training_memory(config.to_dict(), inputs) * 2**20


@pytest.fixture(scope="module")
def fa_peak() -> tuple[ModelConfig, float]:
    """The default FA model on a 32x48 grid and its measured peak (bytes)."""
    config = ModelConfig(channels=3, grid=(32, 48), window=8)
    return config, measured_peak_bytes(config)


def test_the_estimate_is_within_3x_of_the_measured_peak_of_fa(fa_peak):
    config, measured = fa_peak
    assert measured / 3 <= training_memory_bytes(config, BATCH) <= 3 * measured


def test_the_estimate_is_within_3x_of_the_measured_peak_of_convlstm2d():
    config = ModelConfig(channels=3, grid=(32, 48), window=8, cell="convlstm")
    measured = measured_peak_bytes(config)
    assert measured / 3 <= training_memory_bytes(config, BATCH) <= 3 * measured


def test_the_measured_peak_grows_with_the_model(fa_peak):
    small = ModelConfig(channels=2, grid=(8, 8), window=4, filters=(4,), embedding_dim=4)
    assert 0 <= measured_peak_bytes(small, batch=2) < fa_peak[1]
