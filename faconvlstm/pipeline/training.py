"""``fit``: train the autoencoder on a climate file, with atomic checkpoints and resume."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path

import keras
import numpy as np
import xarray as xr

import faconvlstm.backends
from faconvlstm.data.calendar import YEARLY_LEADS, lead_steps
from faconvlstm.data.preprocessing import Preprocessor, area_weights, make_preprocessor
from faconvlstm.data.splits import Split, covers_all_longitudes, hold_out
from faconvlstm.data.windows import WindowDataset, training_starts
from faconvlstm.errors import InputError
from faconvlstm.models import ModelConfig, build_autoencoder, encoder_parameters
from faconvlstm.models.autoencoder import training_memory_bytes
from faconvlstm.pipeline.convergence import (
    EOF_TIMESTEPS,
    Convergence,
    StoppingRule,
    eof_r2,
    has_converged,
    reconstruction_r2,
)
from faconvlstm.pipeline.distributed import (
    DataParallel,
    check_batch_split,
    check_gpus,
    data_parallel,
    needs_torchrun,
)
from faconvlstm.pipeline.launch import launch
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
#: Steps between training windows by default (on data with enough of them).
DEFAULT_STRIDE = 4
#: The most windows the variance explained after training is measured on.
MEASURED_WINDOWS = 512


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
    #: The training/validation split and the window (:class:`~faconvlstm.data.splits.Split`
    #: as JSON).
    split: dict = dataclasses.field(default_factory=dict)
    #: Whether training stopped because the monitored loss stopped improving (not at the cap).
    converged: bool = False
    #: Share of the variance of the validation fields (the training fields without
    #: validation) that the reconstruction explains, and that their projection on the
    #: leading ``eof_modes`` (``embedding_dim``) EOFs of the training fields explains; NaN
    #: when not measured.
    variance_explained: float = float("nan")
    eof_variance_explained: float = float("nan")
    eof_modes: int = 0

    def to_json(self) -> dict:
        """The fields as JSON values (the run directory as a string)."""
        return {**dataclasses.asdict(self), "run_dir": os.fspath(self.run_dir)}

    @classmethod
    def from_json(cls, values: dict) -> TrainingResult:
        """The result :meth:`to_json` gave."""
        return cls(**{**values, "run_dir": Path(values["run_dir"])})


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
        raise InputError(
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
        raise InputError(
            f"'{run_dir}' holds a run with a different configuration ({'; '.join(changes)}); "
            "use a new output directory."
        )
    return int(progress["epochs_done"])


@dataclasses.dataclass(frozen=True)
class _Plan:
    """A run before any training: its fields ``(time, lat, lon, channel)`` split into a
    training and a validation part, their window starts, and the model settings taken from
    the data (the window :func:`~faconvlstm.data.splits.hold_out` chose among them)."""

    model: dict
    config: ModelConfig
    record: dict
    split: Split
    train_fields: xr.DataArray
    train_starts: np.ndarray
    validation_fields: xr.DataArray | None
    validation_starts: np.ndarray | None


def default_horizon(time: xr.DataArray, window: int) -> int:
    """The forecast horizon for data on ``time`` with windows of ``window`` steps: the third
    lead at which skill is measured (:func:`~faconvlstm.data.calendar.lead_steps`: 6 months,
    7 days), at most half the window; 0 (no forecast objective) for yearly steps (annual or
    seasonal means), where next year's fields hold little to learn and forecasting them
    costs the reconstruction (docs/RESULTS.md)."""
    leads = lead_steps(time)
    if leads == YEARLY_LEADS:
        return 0
    return min(leads[min(2, len(leads) - 1)], max(1, window // 2))


def _plan(data: DataSelection, model: dict, training: TrainingSettings) -> _Plan:
    """Load and split ``data``; ``model`` gains ``global_halo`` when the grid is global.

    ``model`` keeps the requested window; the config and the run record hold the one the
    split chose and, unless ``model`` sets one, the :func:`default_horizon` for it; the
    record also holds the split (its ``"split"`` entry) and the grid's coordinates
    (``"grid"``: ``lat``, ``lon``, ``channel``, ``units``), which decoded fields are put on."""
    fields = data.load()
    if "global_halo" not in model and covers_all_longitudes(fields["lon"].values):
        model["global_halo"] = GLOBAL_HALO
    config = ModelConfig(  # the horizon is checked against the window the split chooses
        channels=fields.sizes["channel"], grid=(fields.sizes["lat"], fields.sizes["lon"]),
        **{**model, "forecast_horizon": 0},
    )
    split = hold_out(fields["time"], config.window, training.validation_years)
    horizon = model.get("forecast_horizon")
    if horizon is None:
        horizon = default_horizon(fields["time"], split.window)
    config = dataclasses.replace(config, window=split.window, forecast_horizon=horizon)
    train_fields, validation_fields = split.parts(fields)
    train_starts = training_starts(train_fields["time"], config.window,
                                   _window_stride(train_fields["time"], config.window, training))
    validation_starts = None
    if validation_fields is not None:
        validation_starts = training_starts(validation_fields["time"], config.window, config.window)
    grid = {name: fields[name].values.tolist() for name in ("lat", "lon", "channel", "units")}
    record = {**run_record(data, config, training), "split": split.to_json(), "grid": grid}
    return _Plan(model, config, record, split, train_fields, train_starts, validation_fields,
                 validation_starts)


def _window_stride(time: xr.DataArray, window: int, training: TrainingSettings) -> int:
    """``training.window_stride``, or when None :data:`DEFAULT_STRIDE`, unless that leaves
    fewer windows than an epoch's ``min_epoch_steps`` batches hold: then 1 (every start)."""
    if training.window_stride is not None:
        return training.window_stride
    windows = training_starts(time, window, DEFAULT_STRIDE).size
    return DEFAULT_STRIDE if windows >= training.min_epoch_steps * training.batch_size else 1


def fit(
    data: DataSelection,
    run_dir: str | os.PathLike,
    model: dict | None = None,
    training: TrainingSettings | None = None,
    progress: bool = True,
) -> TrainingResult:
    """Train (or resume training) an autoencoder on ``data``, checkpointing into ``run_dir``.

    ``model`` holds :class:`~faconvlstm.models.ModelConfig` settings beyond those taken from
    the data (``channels``, ``grid``, and ``global_halo`` when the longitudes close the
    circle). The validation timesteps and the window are chosen by
    :func:`~faconvlstm.data.splits.hold_out` (by default the last ~15 % of the timesteps; the
    last ``training.validation_years`` calendar years when that is set); the window shrinks,
    with a :class:`~faconvlstm.data.splits.WindowAdapted` warning, when the data are too short
    for the requested one. The preprocessing is fitted on the training part only. Re-running
    with the same settings continues from the last finished epoch (the same data give the
    same split and window); a larger ``epochs`` trains further.
    ``training.devices > 1`` trains data-parallel (:mod:`faconvlstm.pipeline.distributed`):
    on JAX in this process; on PyTorch in one process per device, which this call starts
    under ``torchrun`` after checking the inputs (:mod:`faconvlstm.pipeline.launch`; or,
    inside a ``torchrun`` job, in each of its processes).
    """
    training = training or TrainingSettings()
    run_dir = Path(run_dir)
    plan = _plan(data, dict(model or {}), training)
    if needs_torchrun(training.devices):
        return _fit_under_torchrun(data, run_dir, plan, training, progress)
    parallel = data_parallel(training.devices, training.batch_size)
    with parallel.scope():  # joins (and leaves) a PyTorch process group
        # CPU devices share the host's memory.
        check_training_memory(plan.config, training.batch_size, parallel.local_processes)
        epochs_done = parallel.agree(
            _prepare_run_dir(run_dir, plan.record, writes=parallel.is_chief),
            "numbers of epochs done",
        )
        keras.utils.set_random_seed(training.seed)
        datasets = _datasets(plan, run_dir, training, epochs_done, parallel)
        result = _train(run_dir, plan.config, training, epochs_done, datasets,
                        progress and parallel.is_chief, parallel)
    return dataclasses.replace(result, split=plan.split.to_json())


def _fit_under_torchrun(data: DataSelection, run_dir: Path, plan: _Plan,
                        training: TrainingSettings, progress: bool) -> TrainingResult:
    """:func:`fit` in one process per device, after the checks this process can make."""
    if data.in_memory:
        raise InputError(
            "Training on several PyTorch devices runs one process per device, which read the "
            "data from files; write the xarray data to a NetCDF or Zarr file and train on it."
        )
    check_batch_split(training.devices, training.batch_size)
    check_gpus(training.devices)
    check_training_memory(plan.config, training.batch_size, training.devices)
    _prepare_run_dir(run_dir, plan.record)
    return TrainingResult.from_json(launch(data, run_dir, plan.model, training, progress))


def _preprocessed(plan: _Plan, run_dir: Path, training: TrainingSettings, epochs_done: int,
                  writes: bool) -> tuple[Preprocessor, xr.DataArray]:
    """The run's preprocessing (fitted on the training fields, or the saved one when the run
    resumes) and the preprocessed training fields; a new fit is saved when ``writes``."""
    preprocessor_file = run_dir / PREPROCESSOR_FILE
    if epochs_done and preprocessor_file.exists():
        preprocessor = Preprocessor.load(preprocessor_file)
        return preprocessor, preprocessor.transform(plan.train_fields)
    preprocessor = make_preprocessor(training.log1p, training.detrend, training.anomalies)
    train_fields = preprocessor.fit_transform(plan.train_fields)
    if writes:
        preprocessor.save(preprocessor_file)
    return preprocessor, train_fields


def _datasets(plan: _Plan, run_dir: Path, training: TrainingSettings, epochs_done: int,
              parallel: DataParallel) -> tuple[WindowDataset, WindowDataset | None]:
    """The training batches (shuffled per epoch from ``epochs_done`` on) and the validation
    batches (None without validation), each this process's share."""
    preprocessor, train_fields = _preprocessed(plan, run_dir, training, epochs_done,
                                               parallel.is_chief)
    window = plan.config.window
    train_data = WindowDataset(
        train_fields, window, plan.train_starts, training.batch_size, shuffle=True,
        seed=training.seed, epoch=epochs_done, min_batches=training.min_epoch_steps,
        **parallel.batching,
    )
    if plan.validation_fields is None:
        return train_data, None
    validation_data = WindowDataset(
        preprocessor.transform(plan.validation_fields), window, plan.validation_starts,
        training.batch_size, **parallel.batching,
    )
    return train_data, validation_data


def _compiled_model(run_dir: Path, config: ModelConfig, training: TrainingSettings,
                    epochs_done: int) -> tuple[keras.Model, dict[str, list[float]]]:
    """The autoencoder and its history: loaded from the last checkpoint when the run
    resumes, else built and compiled new."""
    if epochs_done:
        return load_checkpoint(run_dir), read_progress(run_dir)["history"]
    autoencoder = build_autoencoder(config)
    optimizer = keras.optimizers.Adam(training.learning_rate)
    if config.precision == "mixed_float16":
        # float16 gradients underflow without a (dynamic) loss scale.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    autoencoder.compile(optimizer=optimizer)
    return autoencoder, {}


def _train(run_dir: Path, config: ModelConfig, training: TrainingSettings, epochs_done: int,
           datasets: tuple[WindowDataset, WindowDataset | None], progress: bool,
           parallel: DataParallel) -> TrainingResult:
    """Build or load the model and train it from ``epochs_done`` until it converges or
    reaches ``training.epochs``."""
    train_data, validation_data = datasets
    autoencoder, history = _compiled_model(run_dir, config, training, epochs_done)
    parallel.prepare(autoencoder)
    rule = StoppingRule(patience=training.patience, min_steps=training.min_steps,
                        steps_per_epoch=len(train_data))
    callbacks = [
        Convergence(run_dir, history, rule, training.epochs, writes=parallel.is_chief),
        Checkpoint(run_dir, history, training.seed, writes=parallel.is_chief),
    ]
    if progress:
        callbacks.append(EpochProgress(training.epochs, len(train_data)))
    started = time.perf_counter()
    if epochs_done < training.epochs and not has_converged(history, rule):
        autoencoder.fit(
            train_data,
            validation_data=validation_data,
            epochs=training.epochs,
            initial_epoch=epochs_done,
            callbacks=callbacks,
            verbose=0,
        )
    seconds = time.perf_counter() - started
    return TrainingResult(
        run_dir=run_dir,
        epochs_done=len(history.get("loss", [])),
        resumed_from=epochs_done,
        history=history,
        parameters=autoencoder.count_params(),
        encoder_parameters=encoder_parameters(autoencoder),
        seconds=seconds,
        train_steps=len(train_data),
        validation_steps=0 if validation_data is None else len(validation_data),
        is_chief=parallel.is_chief,
        converged=has_converged(history, rule),
        **_variance_explained(autoencoder, config, datasets, parallel.is_chief),
    )


def _variance_explained(autoencoder: keras.Model, config: ModelConfig,
                        datasets: tuple[WindowDataset, WindowDataset | None],
                        measures: bool) -> dict[str, float]:
    """The result's ``variance_explained`` and ``eof_variance_explained``: on at most
    :data:`MEASURED_WINDOWS` validation windows (training ones without validation), the EOFs
    fitted on at most :data:`~faconvlstm.pipeline.convergence.EOF_TIMESTEPS` training steps;
    measured only when ``measures`` (the first process)."""
    train_data, validation_data = datasets
    if not measures:
        return {}
    measured = train_data if validation_data is None else validation_data
    starts = measured.starts[:: math.ceil(measured.starts.size / MEASURED_WINDOWS)]
    fields = measured.fields.isel(
        time=slice(int(starts.min()), int(starts.max()) + measured.window)
    )
    windows = WindowDataset(fields, measured.window, starts - starts.min(), measured.batch_size)
    train_fields = train_data.fields
    every = math.ceil(train_fields.sizes["time"] / EOF_TIMESTEPS)
    train_fields = train_fields.isel(time=slice(None, None, every))
    return {
        "variance_explained": reconstruction_r2(autoencoder, windows),
        "eof_variance_explained": eof_r2(
            train_fields.values, fields.values, area_weights(fields["lat"].values),
            config.embedding_dim,
        ),
        "eof_modes": config.embedding_dim,
    }
