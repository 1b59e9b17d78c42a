"""Training that ends when the model has learned, and how much of the data it reconstructs.

:class:`Convergence` watches the validation loss (the training loss without validation):
it halves the learning rate when the loss stops improving and stops training when it has
not improved for ``patience`` epochs, once ``min_steps`` optimizer steps are done, with the
best epoch's weights restored. Every decision is a function of the run's loss history, so a
resumed run decides exactly as the uninterrupted one would have.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import keras
import numpy as np
from sklearn.decomposition import PCA

#: The best epoch's weights, kept beside the checkpoints until training ends.
BEST_WEIGHTS_FILE = "best.weights.h5"
#: A loss improves when it falls below the best one by more than this fraction of it.
MIN_RELATIVE_IMPROVEMENT = 1e-2
#: History key of the learning rate each epoch trained with.
LEARNING_RATE_KEY = "learning_rate"
#: The most training timesteps the EOFs of the variance explained after training fit on.
EOF_TIMESTEPS = 2000


@dataclasses.dataclass(frozen=True)
class StoppingRule:
    """When to lower the learning rate and when to stop (``patience`` in epochs)."""

    patience: int = 6
    plateau_patience: int = 2
    plateau_factor: float = 0.5
    min_steps: int = 300
    steps_per_epoch: int = 1


def monitored(history: dict[str, list[float]]) -> str:
    """The loss the rule watches: the validation loss when there is one."""
    return "val_loss" if history.get("val_loss") else "loss"


def best_epoch(losses: list[float]) -> int:
    """Index of the best loss, an improvement counting only beyond
    :data:`MIN_RELATIVE_IMPROVEMENT`; -1 without any finite loss."""
    best, index = np.inf, -1
    for epoch, loss in enumerate(losses):
        improves = index < 0 or loss < best - MIN_RELATIVE_IMPROVEMENT * abs(best)
        if np.isfinite(loss) and improves:
            best, index = loss, epoch
    return index


def epochs_without_improvement(history: dict[str, list[float]]) -> int:
    """Epochs trained since the best one (all of them when no loss was finite)."""
    losses = history.get(monitored(history), [])
    return len(losses) - 1 - best_epoch(losses)


def has_converged(history: dict[str, list[float]], rule: StoppingRule) -> bool:
    """Whether training stopped because the monitored loss stopped improving."""
    epochs = len(history.get(monitored(history), []))
    return (
        epochs * rule.steps_per_epoch >= rule.min_steps
        and epochs_without_improvement(history) >= rule.patience
    )


def _epochs_at_rate(history: dict[str, list[float]]) -> int:
    """Consecutive last epochs trained at the last epoch's learning rate."""
    rates = history.get(LEARNING_RATE_KEY, [])
    count = 0
    for rate in reversed(rates):
        if rate != rates[-1]:
            break
        count += 1
    return count


class Convergence(keras.callbacks.Callback):
    """Learning-rate reduction on a plateau and early stopping with the best weights restored.

    Runs before the checkpoint at each epoch's end, so the checkpoint after the last epoch
    holds the best weights. ``history`` is the run's history so far (the checkpoint callback
    appends each epoch to it after this one); with ``writes=False`` (every process of a
    multi-process run but the first) the best weights are kept in memory only.
    """

    def __init__(self, run_dir: Path, history: dict[str, list[float]], rule: StoppingRule,
                 last_epoch: int, writes: bool = True):
        super().__init__()
        self.best_weights_path = Path(run_dir) / BEST_WEIGHTS_FILE
        self.history = history
        self.rule = rule
        self.last_epoch = last_epoch
        self.writes = writes
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs[LEARNING_RATE_KEY] = float(np.asarray(self.model.optimizer.learning_rate))
        history = {key: [*self.history.get(key, []), float(value)] for key, value in logs.items()}
        if epochs_without_improvement(history) == 0:
            self._keep_best()
        stopping = has_converged(history, self.rule) or epoch + 1 >= self.last_epoch
        if stopping:
            self._restore_best()
            self.model.stop_training = True
        elif (epochs_without_improvement(history) >= self.rule.plateau_patience
              and _epochs_at_rate(history) >= self.rule.plateau_patience):
            self.model.optimizer.learning_rate = logs[LEARNING_RATE_KEY] * self.rule.plateau_factor

    def _keep_best(self) -> None:
        self.best_weights = self.model.get_weights()
        if self.writes:  # Keras names the format from the suffix: a temporary that keeps it
            temporary = self.best_weights_path.with_name(f".{os.getpid()}.{BEST_WEIGHTS_FILE}")
            self.model.save_weights(temporary)
            os.replace(temporary, self.best_weights_path)

    def _restore_best(self) -> None:
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)
        elif self.best_weights_path.is_file():
            self.model.load_weights(self.best_weights_path)

    def on_train_end(self, logs=None):
        if self.writes:
            self.best_weights_path.unlink(missing_ok=True)


def reconstruction_r2(autoencoder: keras.Model, batches) -> float:
    """Fraction of the (area-weighted, valid) variance of standardized fields that the
    autoencoder's reconstruction explains over ``batches`` (a ``WindowDataset``)."""
    residual = total = 0.0
    for batch in batches.batches():
        reconstruction = autoencoder.predict_on_batch(batch)["reconstruction"]
        frames, weights = batch["frames"], batch["weights"]
        residual += float(np.sum(weights * (frames - np.asarray(reconstruction)) ** 2))
        total += float(np.sum(weights * frames**2))
    return 1.0 - residual / total if total > 0 else float("nan")


def eof_r2(train_values: np.ndarray, values: np.ndarray, area: np.ndarray, modes: int) -> float:
    """Fraction of the area-weighted variance of ``values`` that its projection on the
    leading ``modes`` EOFs of ``train_values`` explains.

    Both are standardized fields ``(time, lat, lon, channel)`` with NaN where invalid; cells
    invalid at any training time are left out, ``area`` is ``(lat,)`` (cos latitude).
    """
    scale = np.sqrt(area)[None, :, None, None]
    train = (train_values * scale).reshape(len(train_values), -1)
    test = (values * scale).reshape(len(values), -1)
    kept = np.isfinite(train).all(axis=0)
    train, test = train[:, kept], test[:, kept]
    valid = np.isfinite(test)
    test = np.where(valid, test, 0.0)
    pca = PCA(min(modes, len(train) - 1, train.shape[1]), random_state=0).fit(train)
    residual = np.where(valid, test - pca.inverse_transform(pca.transform(test)), 0.0)
    return 1.0 - float(np.sum(residual**2) / np.sum(test**2))
