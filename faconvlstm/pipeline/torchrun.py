"""Training on several PyTorch devices from one call: ``fit`` starts ``torchrun`` itself.

:func:`launch` writes the run's settings to a JSON file and starts (:func:`start`) the
equivalent of ``torchrun --standalone --nproc-per-node=N -m faconvlstm.pipeline.torchrun
SPEC``; each of the N processes runs :func:`~faconvlstm.pipeline.training.fit` on the
settings, and the first writes what it did (or the input error that stopped it) for
:func:`launch` to return (or raise). A job already running under ``torchrun``
(``WORLD_SIZE`` set, e.g. on several hosts) calls ``fit`` in each process instead.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from faconvlstm.errors import INPUT_ERRORS
from faconvlstm.pipeline.runs import DataSelection, TrainingSettings, read_json, write_json
from faconvlstm.pipeline.training import TrainingResult, fit

#: The first argument that makes ``python -m faconvlstm.pipeline.torchrun`` start the
#: processes (:func:`start`) rather than be one of them (:func:`main`).
START = "--start"
#: The types an input error in a process comes back to :func:`launch` as, most specific first.
PASSED_BACK = (FileNotFoundError, PermissionError, *INPUT_ERRORS)


def launch(data: DataSelection, run_dir: str | os.PathLike, model: dict,
           training: TrainingSettings, progress: bool) -> TrainingResult:
    """``fit`` in ``training.devices`` processes of this host under ``torchrun``."""
    with tempfile.TemporaryDirectory(prefix="faconvlstm-torchrun-") as folder:
        spec, outcome_file = Path(folder) / "spec.json", Path(folder) / "outcome.json"
        write_json(spec, {
            "data": dataclasses.asdict(data),
            "run_dir": os.fspath(run_dir),
            "model": model,
            "training": dataclasses.asdict(training),
            "progress": progress,
            "outcome": os.fspath(outcome_file),
        })
        command = [sys.executable, "-m", __name__, START, str(training.devices), os.fspath(spec)]
        completed = subprocess.run(command, env={**os.environ, "KERAS_BACKEND": "torch"},
                                   check=False)
        outcome = read_json(outcome_file) if outcome_file.exists() else {}
    if "error" in outcome:
        kinds = {kind.__name__: kind for kind in PASSED_BACK}
        raise kinds[outcome["kind"]](outcome["error"])
    if completed.returncode or not outcome:
        raise RuntimeError(
            f"Training in {training.devices} processes under torchrun failed (exit status "
            f"{completed.returncode}); the messages above say why."
        )
    return TrainingResult(**{**outcome, "run_dir": Path(outcome["run_dir"])})


def start(processes: int, spec_file: str) -> int:
    """Run :func:`main` in ``processes`` processes under ``torchrun``; their exit status.

    A process that fails has said why (an input error in the outcome file, anything else
    on its standard error), so torchrun's own traceback of the failure is left out.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    try:
        run(parse_args(
            ["--standalone", f"--nproc-per-node={processes}", "-m", __spec__.name, spec_file]
        ))
    except ChildFailedError:
        return 1
    return 0


def main(spec_file: str) -> int:
    """One of the processes :func:`launch` starts: train, and report from the first."""
    spec = read_json(Path(spec_file))
    first = os.environ.get("RANK", "0") == "0"
    try:
        result = fit(DataSelection(**spec["data"]), spec["run_dir"], spec["model"],
                     TrainingSettings(**spec["training"]), spec["progress"])
    except INPUT_ERRORS as error:
        if first:
            kind = next(kind for kind in PASSED_BACK if isinstance(error, kind))
            write_json(Path(spec["outcome"]), {"error": str(error), "kind": kind.__name__})
        return 1
    if first:
        outcome = {**dataclasses.asdict(result), "run_dir": str(result.run_dir)}
        write_json(Path(spec["outcome"]), outcome)
    return 0


if __name__ == "__main__":
    if sys.argv[1] == START:
        sys.exit(start(int(sys.argv[2]), sys.argv[3]))
    sys.exit(main(sys.argv[1]))
