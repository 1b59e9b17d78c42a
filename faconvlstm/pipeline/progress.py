"""Progress bars for long work (rich)."""

from __future__ import annotations

import keras
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def progress_bar(transient: bool = False, disable: bool = False) -> Progress:
    """A rich progress bar with a description, counts and elapsed time (none if ``disable``)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        transient=transient,
        disable=disable,
    )


class EpochProgress(keras.callbacks.Callback):
    """One bar per epoch with the running loss, and the validation loss at its end."""

    def __init__(self, epochs: int, steps: int):
        super().__init__()
        self.epochs = epochs
        self.steps = steps
        self.bar = progress_bar()
        self.task = None

    def on_train_begin(self, logs=None):
        self.bar.start()

    def on_epoch_begin(self, epoch, logs=None):
        self.task = self.bar.add_task(
            f"epoch {epoch + 1}/{self.epochs}", total=self.steps, status=""
        )

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        status = "" if loss is None else f"loss {float(loss):.4f}"
        self.bar.update(self.task, completed=batch + 1, status=status)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        status = " ".join(f"{key} {float(value):.4f}" for key, value in logs.items())
        self.bar.update(self.task, completed=self.steps, status=status)

    def on_train_end(self, logs=None):
        self.bar.stop()
