"""Training on several PyTorch devices from one call: ``fit`` starts ``torchrun`` itself.

:func:`launch` writes the run's settings to a JSON file and runs ``python -m
torch.distributed.run --standalone --nproc-per-node=N -m faconvlstm.pipeline.torchrun SPEC``;
each of the N processes runs :func:`~faconvlstm.pipeline.training.fit` on the settings, and
the first writes what it did (or the input error that stopped it) for :func:`launch` to
return (or raise). A job already running under ``torchrun`` (``WORLD_SIZE`` set, e.g. on
several hosts) calls ``fit`` in each process instead.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from faconvlstm.pipeline.runs import DataSelection, TrainingSettings
from faconvlstm.pipeline.training import TrainingResult, fit

#: Input errors a process reports back to :func:`launch`, which raises them again.
REPORTED_ERRORS = {error.__name__: error for error in
                   (ValueError, FileNotFoundError, PermissionError, OSError)}


def launch(data: DataSelection, run_dir: str | os.PathLike, model: dict,
           training: TrainingSettings, progress: bool) -> TrainingResult:
    """``fit`` in ``training.devices`` processes of this host under ``torchrun``."""
    with tempfile.TemporaryDirectory(prefix="faconvlstm-torchrun-") as folder:
        spec, outcome_file = Path(folder) / "spec.json", Path(folder) / "outcome.json"
        spec.write_text(json.dumps({
            "data": dataclasses.asdict(data),
            "run_dir": os.fspath(run_dir),
            "model": model,
            "training": dataclasses.asdict(training),
            "progress": progress,
            "outcome": os.fspath(outcome_file),
        }))
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={training.devices}", "-m", __name__, os.fspath(spec),
        ]
        completed = subprocess.run(command, env={**os.environ, "KERAS_BACKEND": "torch"},
                                   check=False)
        outcome = json.loads(outcome_file.read_text()) if outcome_file.exists() else {}
    if "error" in outcome:
        raise REPORTED_ERRORS.get(outcome["kind"], RuntimeError)(outcome["error"])
    if completed.returncode or not outcome:
        raise RuntimeError(
            f"Training in {training.devices} processes under torchrun failed (exit status "
            f"{completed.returncode}); the messages above say why."
        )
    return TrainingResult(**{**outcome, "run_dir": Path(outcome["run_dir"])})


def _write(path: str, outcome: dict) -> None:
    Path(path).write_text(json.dumps(outcome))


def main(spec_file: str) -> int:
    """One of the processes :func:`launch` starts: train, and report from the first."""
    spec = json.loads(Path(spec_file).read_text())
    first = os.environ.get("RANK", "0") == "0"
    try:
        result = fit(DataSelection(**spec["data"]), spec["run_dir"], spec["model"],
                     TrainingSettings(**spec["training"]), spec["progress"])
    except tuple(REPORTED_ERRORS.values()) as error:
        if first:
            _write(spec["outcome"], {"error": str(error), "kind": type(error).__name__})
        return 1
    if first:
        _write(spec["outcome"], {**dataclasses.asdict(result), "run_dir": str(result.run_dir)})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
