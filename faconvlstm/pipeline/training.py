"""``fit``: train the autoencoder on a climate file, with atomic checkpoints and resume."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import keras
import numpy as np
import xarray as xr

import faconvlstm.backends
from faconvlstm.data.preprocessing import Preprocessor, make_preprocessor
from faconvlstm.data.windows import WindowDataset, training_starts
from faconvlstm.models import ModelConfig, build_autoencoder, encoder_parameters
from faconvlstm.models.autoencoder import training_memory_bytes
from faconvlstm.pipeline.distributed import (
    DataParallel,
    check_batch_split,
    check_gpus,
    data_parallel,
    needs_torchrun,
)
from faconvlstm.pipeline.progress import EpochProgress
from faconvlstm.pipeline.runs import (
    PREPROCESSOR_FILE,
    RUN_FILE,
    DataSelection,
    TrainingSettings,
    incompatibilities,
    load_checkpoint,
    read_json,
    read_progress,
    run_record,
    save_progress,
    write_json,
)

#: Cells of circular (longitude) and reflected (latitude) padding on global grids.
GLOBAL_HALO = 4


@dataclasses.dataclass
class TrainingResult:
    """What a call to :func:`fit` did."""

    run_dir: Path
    epochs_done: int
    resumed_from: int
    history: dict[str, list[float]]
    parameters: int
    encoder_parameters: int
    seconds: float
    train_steps: int
    validation_steps: int
    #: False in every process of a multi-process run but the first (which alone writes).
    is_chief: bool = True


def epoch_seed(seed: int, epoch: int) -> int:
    """The random seed of one epoch: a function of the run's seed and the epoch alone."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


class Checkpoint(keras.callbacks.Callback):
    """After every epoch: the model and optimizer, then the progress, each written atomically.

    Every epoch starts from the random state ``epoch_seed(seed, epoch)`` and its data order
    is a function of the seed and the epoch too, so a resumed run repeats exactly what the
    uninterrupted run would have done. The history also records ``epoch_seconds``, the wall
    time of each epoch (validation included). With ``writes=False`` (every process of a
    multi-process run but the first) nothing is written.
    """

    def __init__(self, run_dir: Path, history: dict[str, list[float]], seed: int,
                 writes: bool = True):
        super().__init__()
        self.run_dir = run_dir
        self.history = history
        self.seed = seed
        self.writes = writes
        self.epoch_started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        keras.utils.set_random_seed(epoch_seed(self.seed, epoch))
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.history.setdefault("epoch_seconds", []).append(
            time.perf_counter() - self.epoch_started
        )
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        if self.writes:
            save_progress(self.model, self.run_dir, epoch + 1, self.history)


def available_memory_bytes() -> int:
    """Memory the system can give this process now (Linux ``MemAvailable``, else all RAM)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _size(size: int) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"


def check_training_memory(config: ModelConfig, batch_size: int, processes: int = 1) -> None:
    """Refuse, before any training, a CPU batch whose estimated memory exceeds what is free;
    ``processes`` on this host share the batch (each takes an equal part)."""
    if not faconvlstm.backends.runs_on_cpu():
        return
    needed = processes * training_memory_bytes(config, batch_size // processes)
    available = available_memory_bytes()
    if needed > available:
        raise ValueError(
            f"A training batch of {batch_size} windows of {config.window} steps on the "
            f"{config.grid[0]}x{config.grid[1]} grid needs about {_size(needed)}, more than "
            f"the {_size(available)} of memory available; coarsen the grid "
            "(--coarsen), crop a region (--region), or lower --batch-size or --window."
        )


def _prepare_run_dir(run_dir: Path, record: dict, writes: bool = True) -> int:
    """Check ``run_dir`` belongs to the same run and return its epochs done; a directory
    without a finished epoch (new, or left by a start that failed) is (re)started as ``record``
    (unless ``writes`` is False)."""
    run_file = run_dir / RUN_FILE
    progress = read_progress(run_dir) if run_file.exists() else None
    if progress is None:
        if writes:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_json(run_file, record)
        return 0
    changes = incompatibilities(read_json(run_file), record)
    if changes:
        raise ValueError(
            f"'{run_dir}' holds a run with a different configuration ({'; '.join(changes)}); "
            "use a new output directory."
        )
    return int(progress["epochs_done"])


