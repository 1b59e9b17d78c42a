"""Peak memory of one training step of a model, measured in a fresh process.

Every model of an evaluation trains in one process, whose peak resident memory only ever
grows; a child process per model gives each its own peak. ``python -m
faconvlstm.evaluation.memory CONFIG.json BATCH.npz`` prints the peak in MiB above the memory
in use before the first step.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import final

import numpy as np

from faconvlstm.models import ModelConfig, build_autoencoder

#: Steps run in the child; the peak of the later ones includes the optimizer's state.
STEPS = 2


def _resident_mib(field: str) -> float:
    """A memory field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}; peak memory needs Linux.")


@final
class PeakMemory:
    """``with PeakMemory() as peak: ...`` sets ``peak.extra_mib``: the peak resident memory of
    this process within the block above its resident memory on entering (MiB).

    The kernel's high-water mark is reset on entering, so that a transient peak while
    importing or building does not hide the peak of the measured code.
    """

    extra_mib: float | None = None

    def __enter__(self) -> PeakMemory:
        self._before = _resident_mib("VmRSS")
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return self

    def __exit__(self, *exception) -> None:
        self.extra_mib = max(_resident_mib("VmHWM") - self._before, 0.0)


def peak_training_memory(config: dict, batch: dict[str, np.ndarray]) -> float:
    """Peak extra resident memory (MiB) of training ``config``'s model on ``batch``.

    Bad settings raise :class:`~faconvlstm.errors.InputError` here, before the child starts.
    """
    ModelConfig.from_dict(config)
    with tempfile.TemporaryDirectory() as directory:
        config_path = Path(directory) / "config.json"
        batch_path = Path(directory) / "batch.npz"
        config_path.write_text(json.dumps(config))
        np.savez(batch_path, **batch)
        completed = subprocess.run(
            [sys.executable, "-m", "faconvlstm.evaluation.memory", str(config_path), str(batch_path)],
            capture_output=True, text=True, check=False,
        )
    if completed.returncode != 0:
        reason = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"The memory measurement failed: {reason}")
    return float(completed.stdout.strip().splitlines()[-1])


def _measure(config_path: str, batch_path: str) -> float:
    import keras

    config = ModelConfig.from_dict(json.loads(Path(config_path).read_text()))
    batch = dict(np.load(batch_path))
    model = build_autoencoder(config)
    model.compile(optimizer=keras.optimizers.Adam())
    with PeakMemory() as peak:
        for _ in range(STEPS):
            model.train_on_batch(batch)
    return peak.extra_mib


if __name__ == "__main__":
    import faconvlstm  # noqa: F401  (chooses the backend as the parent did)

    print(f"{_measure(*sys.argv[1:3]):.1f}")
