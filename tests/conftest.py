"""Test-wide settings and shared data.

The backend comes from KERAS_BACKEND: ``make test`` runs the whole suite on the default backend
(PyTorch) and the tests marked ``backend`` on JAX and TensorFlow. The tiny synthetic file and the
one-epoch run are made once per session.
"""

import faconvlstm  # first: it chooses the backend when KERAS_BACKEND is unset

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from faconvlstm.data.synthetic import write_synthetic_dataset  # noqa: E402
from faconvlstm.pipeline import DataSelection, TrainingSettings, fit  # noqa: E402


def on_the_default_backend_only(reason: str):
    """Skip on any backend but PyTorch, the default: code whose behavior does not depend on
    the backend, where a second run would only add time."""
    return pytest.mark.skipif(faconvlstm.backend() != "torch", reason=reason)


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from a clean Keras session with a fixed seed (without Keras' garbage
    collection, 0.3 s a test; the tests that measure memory do so in fresh processes)."""
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def pytest_report_header(config):
    return f"faconvlstm on the Keras '{faconvlstm.backend()}' backend"


#: Three channels, one of them (sst) NaN on land.
VARIABLES = ["t2m", "z@500", "sst"]
MODEL = {"filters": [4], "embedding_dim": 4, "window": 8}
#: One epoch on 2000 (366 days: 45 windows of 8 steps, 8 apart: 6 batches), validation on 2001.
SETTINGS = TrainingSettings(
    epochs=1, batch_size=8, window_stride=8, validation_years=1, min_epoch_steps=1
)
SYNTHETIC = {"years": 2, "nlat": 8, "nlon": 12}


@pytest.fixture(scope="session")
def synthetic_file(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("data") / "synthetic.nc", **SYNTHETIC)


@pytest.fixture(scope="session")
def selection(synthetic_file) -> DataSelection:
    return DataSelection(source=str(synthetic_file), variables=VARIABLES)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, selection):
    """A finished one-epoch run; tests copy its directory before changing it."""
    return fit(selection, tmp_path_factory.mktemp("runs") / "run", MODEL, SETTINGS, progress=False)
