"""A regression test on real observations: their embeddings must carry the leading EOF.

November-March mean SST anomalies of the tropical Pacific, one map a winter (``eofs``'
example data, the seasonal-mean files of docs/RESULTS.md). A model trained with the default
settings must carry the field's leading EOF, a basin-wide, one-signed pattern (ENSO) that
explains half the variance. The threshold is a margin below what the default model
measured, far above what embeddings blind to the mode reach (below 0, docs/RESULTS.md).
Six epochs (72 optimizer steps) instead of training until converged keep it fast.
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

#: Measured 0.99 (2026-12-02, PyTorch, 6 epochs); embeddings blind to the mode score below 0.
PC1_PROBE_THRESHOLD = 0.8


def _winter_means() -> DataSelection:
    """50 November-March means (1963/64 .. 2011/12), 18 x 30 cells of 5 degrees, anomalies."""
    eofs = pytest.importorskip("eofs")
    path = Path(eofs.__file__).parent / "examples" / "example_data" / "sst_ndjfm_anom.nc"
    return DataSelection(str(path), ["sst"])


@pytest.mark.filterwarnings("ignore::faconvlstm.data.splits.WindowAdapted")
def test_embeddings_of_real_winter_sst_carry_its_leading_eof(tmp_path):
    data = _winter_means()
    settings = TrainingSettings(epochs=6, min_steps=50, patience=2)
    result = fit(data, tmp_path / "run", training=settings, progress=False)
    run = TrainedRun(result.run_dir)
    fields = data.load().load()
    embeddings = run.embed(fields)
    preprocessed = run.preprocess(fields).load()
    pcs = eof_embeddings(preprocessed, preprocessed, 3)["embeddings"].values
    covered = np.isfinite(embeddings).all(axis=1)
    assert covered.all()
    assert probe_r2(embeddings, pcs[:, 0]) >= PC1_PROBE_THRESHOLD
