"""Test-wide settings: the backend comes from KERAS_BACKEND (``.ci/run`` runs jax, then torch)."""

import faconvlstm  # first: it chooses the backend when KERAS_BACKEND is unset

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from a clean Keras session with a fixed seed."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def pytest_report_header(config):
    return f"faconvlstm on the Keras '{faconvlstm.backend()}' backend"
