"""Training on several PyTorch devices from one call: ``fit`` starts ``torchrun`` itself.

:func:`launch` writes the run's settings to a JSON file and starts the equivalent of
``torchrun --standalone --nproc-per-node=N -m faconvlstm.pipeline.torchrun SPEC``
(:func:`faconvlstm.pipeline.torchrun.start`); each of the N processes runs
:func:`~faconvlstm.pipeline.training.fit` on the settings
(:func:`faconvlstm.pipeline.torchrun.main`), and the first writes what it did (or the input
error that stopped it, :func:`error_outcome`) for :func:`launch` to return (or raise). A job
already running under ``torchrun`` (``WORLD_SIZE`` set, e.g. on several hosts) calls ``fit``
in each process instead.
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

#: The module whose processes train: ``python -m`` it with :data:`START` to start them.
TORCHRUN_MODULE = "faconvlstm.pipeline.torchrun"
#: The first argument that makes ``python -m faconvlstm.pipeline.torchrun`` start the
#: processes rather than be one of them.
START = "--start"
#: The types an input error in a process comes back to :func:`launch` as, most specific first.
PASSED_BACK = (FileNotFoundError, PermissionError, *INPUT_ERRORS)


def error_outcome(error: Exception) -> dict[str, str]:
    """What a process writes for :func:`launch` to raise: the message of an input error and
    the most specific of :data:`PASSED_BACK` it is an instance of."""
    kind = next(kind for kind in PASSED_BACK if isinstance(error, kind))
    return {"error": str(error), "kind": kind.__name__}


def launch(data: DataSelection, run_dir: str | os.PathLike, model: dict,
           training: TrainingSettings, progress: bool) -> dict:
    """``fit`` in ``training.devices`` processes of this host under ``torchrun``; the first
    process's :meth:`~faconvlstm.pipeline.training.TrainingResult.to_json`."""
    with tempfile.TemporaryDirectory(prefix="faconvlstm-torchrun-") as folder:
        spec, outcome_file = Path(folder) / "spec.json", Path(folder) / "outcome.json"
        write_json(spec, {
            "data": data.record(),
            "run_dir": os.fspath(run_dir),
            "model": model,
            "training": dataclasses.asdict(training),
            "progress": progress,
            "outcome": os.fspath(outcome_file),
        })
        command = [sys.executable, "-m", TORCHRUN_MODULE, START, str(training.devices),
                   os.fspath(spec)]
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
    return outcome
