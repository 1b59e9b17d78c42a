"""Regression tests on real observations: their embeddings must carry the leading EOF.

Two resolutions: monthly OSTIA SST anomalies of the tropical Pacific (``iris-sample-data``)
and November-March mean SST anomalies of the tropical Pacific, one map a winter
(``eofs``' example data). A model trained with the default settings (plus ``anomalies`` for
the monthly data, which have a seasonal cycle) must carry the field's leading EOF, a
basin-wide, one-signed pattern (ENSO) that explains most of the variance. Each threshold is
a margin below what the default model measured, far above what embeddings blind to the mode
reach (below 0, docs/RESULTS.md). Fewer optimizer steps than the default keep them fast.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faconvlstm.evaluation.eof import eof_embeddings
from faconvlstm.evaluation.probes import probe_r2
from faconvlstm.pipeline import TrainingSettings, fit
from faconvlstm.pipeline.embedding import TrainedRun
from faconvlstm.pipeline.runs import DataSelection

#: Measured 0.99 on both (2026-12-02, PyTorch); embeddings blind to the mode score below 0.
PC1_PROBE_THRESHOLD = 0.8


def _ostia_monthly() -> tuple[DataSelection, bool]:
    """54 monthly maps, 18 x 48 cells of 0.83 degrees with land NaNs (Central America)."""
    sample_data = pytest.importorskip("iris_sample_data")
    path = Path(sample_data.path) / "ostia_monthly.nc"
    region = [-9.0, 9.0, 240.0, 280.0]
    return DataSelection(str(path), ["surface_temperature"], region=region), True


def _winter_means() -> tuple[DataSelection, bool]:
    """50 November-March means (1963/64 .. 2011/12), 18 x 30 cells of 5 degrees, anomalies."""
    eofs = pytest.importorskip("eofs")
    path = Path(eofs.__file__).parent / "examples" / "example_data" / "sst_ndjfm_anom.nc"
    return DataSelection(str(path), ["sst"]), False


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::faconvlstm.data.splits.WindowAdapted")
@pytest.mark.parametrize("dataset", [_ostia_monthly, _winter_means], ids=["monthly", "winter"])
def test_embeddings_of_real_sst_carry_its_leading_eof(tmp_path, dataset):
    data, anomalies = dataset()
    settings = TrainingSettings(anomalies=anomalies, min_steps=100, patience=2)
    result = fit(data, tmp_path / "run", training=settings, progress=False)
    run = TrainedRun(result.run_dir)
    fields = data.load().load()
    embeddings = run.embed(fields)
    preprocessed = run.preprocess(fields).load()
    pcs = eof_embeddings(preprocessed, preprocessed, 3)["embeddings"].values
    covered = np.isfinite(embeddings).all(axis=1)
    assert covered.all()
    assert probe_r2(embeddings, pcs[:, 0]) >= PC1_PROBE_THRESHOLD
