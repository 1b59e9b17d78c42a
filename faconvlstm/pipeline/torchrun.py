"""The processes :func:`~faconvlstm.pipeline.launch.launch` starts under ``torchrun``.

``python -m faconvlstm.pipeline.torchrun --start N SPEC`` starts N processes
(:func:`start`), each ``python -m faconvlstm.pipeline.torchrun SPEC`` (:func:`main`): it runs
:func:`~faconvlstm.pipeline.training.fit` on the settings in ``SPEC`` and the first writes
what it did, or the input error that stopped it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from faconvlstm.errors import INPUT_ERRORS
from faconvlstm.pipeline.launch import START, error_outcome
from faconvlstm.pipeline.runs import DataSelection, TrainingSettings, read_json, write_json
from faconvlstm.pipeline.training import fit


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
    """One of the processes :func:`start` starts: train, and report from the first."""
    spec = read_json(Path(spec_file))
    first = os.environ.get("RANK", "0") == "0"
    try:
        result = fit(DataSelection(**spec["data"]), spec["run_dir"], spec["model"],
                     TrainingSettings(**spec["training"]), spec["progress"])
    except INPUT_ERRORS as error:
        if first:
            write_json(Path(spec["outcome"]), error_outcome(error))
        return 1
    if first:
        write_json(Path(spec["outcome"]), result.to_json())
    return 0


if __name__ == "__main__":
    if sys.argv[1] == START:
        sys.exit(start(int(sys.argv[2]), sys.argv[3]))
    sys.exit(main(sys.argv[1]))
