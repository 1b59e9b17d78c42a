"""A run directory: what was trained on what, and the files that let it resume and embed.

Layout of ``RUN_DIR``::

    run.json          data selection, preprocessing, model and training settings
    preprocessor.nc   the preprocessing fitted on the training part
    checkpoint-NNNN.keras  model and optimizer (and the RNG states) after epoch NNNN
    best.weights.h5        the best epoch's weights, while training runs
    progress.json          epochs finished, the checkpoint they are in, the loss history

Every file is written atomically, and a new checkpoint is written under a new name before
``progress.json`` points to it (older ones are removed after), so a run killed at any moment
resumes from its last finished epoch.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import keras

import faconvlstm
from faconvlstm.data.io import Source, is_in_memory, load_fields
from faconvlstm.data.storage import atomic_path
from faconvlstm.errors import InputError
from faconvlstm.models import ModelConfig

RUN_FILE = "run.json"
PREPROCESSOR_FILE = "preprocessor.nc"
PROGRESS_FILE = "progress.json"
CHECKPOINT_PATTERN = "checkpoint-*.keras"
#: The single checkpoint of runs written by faconvlstm 0.1.0 before checkpoints were numbered.
UNNUMBERED_CHECKPOINT = "checkpoint.keras"


@dataclasses.dataclass(frozen=True)
class DataSelection:
    """Which data a run reads: ``source`` (file, glob, list or Zarr store; or xarray objects,
    which the run records as ``None``) and the selection. ``time_dim`` and ``time_units`` fix
    a time axis whose metadata are missing (:func:`~faconvlstm.data.io.decode_time_axis`)."""

    source: Source | None
    variables: list[str]
    region: list[float] | None = None
    time: list[str] | None = None
    season: str | None = None
    coarsen: int | None = None
    time_dim: str | None = None
    time_units: str | None = None

    @property
    def in_memory(self) -> bool:
        """Whether the source is xarray objects rather than paths."""
        return is_in_memory(self.source)

    def record(self) -> dict:
        """The selection as JSON values; an in-memory source is recorded as ``None``."""
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        return json_ready({**values, "source": None if self.in_memory else self.source})

    def load(self, source: Source | None = None, time: list[str] | None = None):
        """The selected fields ``(time, lat, lon, channel)`` of ``source`` (default: the run's)."""
        source = self.source if source is None else source
        if source is None:
            raise InputError(
                "The run was trained on xarray objects, not files; pass the data to embed."
            )
        return load_fields(
            source,
            self.variables,
            region=self.region,
            time=self.time if time is None else time,
            season=self.season,
            coarsen=self.coarsen,
            time_dim=self.time_dim,
            time_units=self.time_units,
        )


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """How a run trains; ``epochs`` may grow between invocations (training continues).

    ``devices > 1`` trains data-parallel (see :func:`faconvlstm.pipeline.training.fit`); the
    number of devices may change when a run resumes, the global batch stays ``batch_size``.
    ``validation_years=None`` holds out the last ~15 % of the timesteps for validation, ``N``
    the last N calendar years, 0 nothing (see :func:`faconvlstm.data.splits.hold_out`).
    Training stops when the validation loss (the training loss without validation) has not
    improved for ``patience`` epochs, once ``min_steps`` optimizer steps are done, and at the
    latest after ``epochs`` epochs; every epoch has at least ``min_epoch_steps`` steps (several
    passes over short data). See :mod:`faconvlstm.pipeline.convergence`. Training windows
    start every ``window_stride`` steps; by default 4, or every step on data too short to
    fill an epoch with windows 4 apart.
    """

    epochs: int = 100
    batch_size: int = 8
    learning_rate: float = 6e-3
    window_stride: int | None = None
    validation_years: int | None = None
    min_steps: int = 300
    min_epoch_steps: int = 10
    patience: int = 6
    seed: int = 0
    log1p: list[str] = dataclasses.field(default_factory=list)
    anomalies: bool = False
    detrend: bool = False
    devices: int = 1


#: Settings that may change when a run is resumed.
RESUMABLE_CHANGES = {
    ("training", name) for name in ("epochs", "devices", "min_steps", "patience")
}


def run_record(data: DataSelection, model: ModelConfig, training: TrainingSettings) -> dict:
    return {
        "data": data.record(),
        "model": model.to_dict(),
        "training": dataclasses.asdict(training),
        "faconvlstm_version": faconvlstm.__version__,
        "backend": faconvlstm.backend(),
    }


def json_ready(value: Any) -> Any:
    """Tuples to lists, recursively, so a record compares equal to its JSON round trip."""
    return json.loads(json.dumps(value))


def with_defaults(record: dict) -> dict:
    """A run record with every setting a later version added filled in by its default."""
    return json_ready({
        "data": DataSelection(**record.get("data", {})).record(),
        "model": ModelConfig.from_dict(record.get("model", {})).to_dict(),
        "training": dataclasses.asdict(TrainingSettings(**record.get("training", {}))),
    })


def incompatibilities(saved: dict, requested: dict) -> list[str]:
    """``section.key: saved -> requested`` for every setting that differs and may not change.

    Settings missing from ``saved`` (added to the package after it was written) count as
    their defaults.
    """
    saved, changes = with_defaults(saved), []
    for section in ("data", "model", "training"):
        old, new = saved[section], json_ready(requested[section])
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key) and (section, key) not in RESUMABLE_CHANGES:
                changes.append(f"{section}.{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return changes


def write_json(path: Path, value: dict) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(json_ready(value), indent=2) + "\n")


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as error:
        raise InputError(f"Cannot read '{path}' as JSON: {error}") from None


def read_run(run_dir: str | os.PathLike) -> dict:
    """The ``run.json`` of ``run_dir``; a clear error when it is not a run directory."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"'{run_dir}' is not a run directory: it has no {RUN_FILE}; train one with "
            "`faconvlstm train`."
        )
    return read_json(path)


def checkpoint_name(epochs_done: int) -> str:
    return f"checkpoint-{epochs_done:04d}.keras"


def save_progress(model: keras.Model, run_dir: Path, epochs_done: int, history: dict) -> None:
    """Checkpoint ``model`` after ``epochs_done`` epochs, then point ``progress.json`` at it.

    Until the progress is written the previous checkpoint stays the run's; checkpoints it
    no longer names (older ones, or one a killed process wrote) are removed afterwards.
    """
    name = checkpoint_name(epochs_done)
    with atomic_path(run_dir / name) as temporary:
        model.save(temporary)
    write_json(
        run_dir / PROGRESS_FILE,
        {"epochs_done": epochs_done, "checkpoint": name, "history": history},
    )
    for path in [*run_dir.glob(CHECKPOINT_PATTERN), run_dir / UNNUMBERED_CHECKPOINT]:
        if path.name != name:
            path.unlink(missing_ok=True)


def read_progress(run_dir: str | os.PathLike) -> dict | None:
    """``progress.json`` of a run whose checkpoint exists; None before the first epoch ends."""
    path = Path(run_dir) / PROGRESS_FILE
    if not path.is_file():
        return None
    progress = read_json(path)
    progress.setdefault("checkpoint", UNNUMBERED_CHECKPOINT)
    if not (Path(run_dir) / progress.get("checkpoint", "")).is_file():
        raise InputError(
            f"'{path}' names the checkpoint {progress.get('checkpoint')!r}, which is missing "
            f"from '{run_dir}'; the run directory was changed by hand. Start a new run."
        )
    return progress


def load_checkpoint(run_dir: str | os.PathLike) -> keras.Model:
    """The model (with its optimizer state) saved after the run's last finished epoch."""
    progress = read_progress(run_dir)
    if progress is None:
        raise FileNotFoundError(f"'{run_dir}' has no checkpoint: no epoch has finished yet.")
    path = Path(run_dir) / progress["checkpoint"]
    try:
        return keras.saving.load_model(path)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
        raise InputError(
            f"Cannot load the checkpoint '{path}' ({type(error).__name__}: {error}); it is "
            "damaged or was written by an incompatible version."
        ) from None
