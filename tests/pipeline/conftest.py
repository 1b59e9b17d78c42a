"""Tiny shared data for the pipeline tests: one synthetic file and one trained run per session."""

import pytest

from faconvlstm.data.synthetic import write_synthetic_dataset
from faconvlstm.pipeline import DataSelection, TrainingSettings, fit

#: Three channels, one of them (sst) NaN on land.
VARIABLES = ["t2m", "z@500", "sst"]
MODEL = {"filters": [4], "embedding_dim": 4, "window": 8}
#: One epoch on 2000 (366 days: 45 windows of 8 steps, 8 apart: 6 batches), validation on 2001.
SETTINGS = TrainingSettings(epochs=1, batch_size=8, window_stride=8, validation_years=1)
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
