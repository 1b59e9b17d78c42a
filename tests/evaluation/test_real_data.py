"""A regression test on real observations: monthly OSTIA SST anomalies of the tropical Pacific.

The embeddings of a model trained with the default settings (plus ``anomalies``, the data
having a seasonal cycle) must carry the leading EOF of the field, a basin-wide, one-signed
pattern that explains most of the variance. The threshold is a margin below what the default
model measured, far above what embeddings blind to the mode reach (below 0, docs/RESULTS.md).
Fewer optimizer steps than the default keep it fast.
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

sample_data = pytest.importorskip("iris_sample_data")

#: 54 monthly maps, 18 x 48 cells of 0.83 degrees with land NaNs (Central America).
SELECTION = {"variables": ["surface_temperature"], "region": [-9.0, 9.0, 240.0, 280.0]}
#: Measured 0.99 (2026-12-02, PyTorch, 9 epochs); embeddings blind to the mode score below 0.
PC1_PROBE_THRESHOLD = 0.8


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::faconvlstm.data.splits.WindowAdapted")
def test_embeddings_of_real_sst_carry_its_leading_eof(tmp_path):
    data = DataSelection(str(Path(sample_data.path) / "ostia_monthly.nc"), **SELECTION)
    settings = TrainingSettings(anomalies=True, min_steps=100, patience=2)
    result = fit(data, tmp_path / "run", training=settings, progress=False)
    run = TrainedRun(result.run_dir)
    fields = data.load().load()
    embeddings = run.embed(fields)
    preprocessed = run.preprocess(fields).load()
    pcs = eof_embeddings(preprocessed, preprocessed, 3)["embeddings"].values
    covered = np.isfinite(embeddings).all(axis=1)
    assert covered.all()
    assert probe_r2(embeddings, pcs[:, 0]) >= PC1_PROBE_THRESHOLD
