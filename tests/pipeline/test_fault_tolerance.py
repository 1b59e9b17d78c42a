"""Nothing is lost: a training process killed with SIGKILL resumes to the uninterrupted result,
and the same seed on the same backend gives the same embeddings."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
from click.testing import CliRunner

import faconvlstm
from faconvlstm.cli import main
from faconvlstm.pipeline import embed, fit
from faconvlstm.pipeline.runs import PROGRESS_FILE, load_checkpoint
from tests.conftest import MODEL, SETTINGS, VARIABLES, on_the_default_backend_only

EPOCHS = 3


def train_arguments(data, run_dir) -> list[str]:
    """``faconvlstm train`` arguments of a small run of :data:`EPOCHS` epochs."""
    return [
        "train", str(data), "--vars", ",".join(VARIABLES), "--out", str(run_dir), "--epochs",
        str(EPOCHS), "--filters", "4", "--embedding-dim", "4", "--window", "8", "--stride", "8",
        "--batch-size", "8",
    ]


def train_in_this_process(data, run_dir) -> None:
    result = CliRunner().invoke(main, train_arguments(data, run_dir))
    assert result.exit_code == 0, result.output


def subprocess_environment() -> dict:
    return {**os.environ, "KERAS_BACKEND": faconvlstm.backend()}


def epochs_done(run_dir) -> int:
    try:
        return json.loads((run_dir / PROGRESS_FILE).read_text())["epochs_done"]
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def kill_during_second_epoch(data, run_dir, delay: float) -> None:
    """Start training in a child process, SIGKILL it ``delay`` seconds after its first epoch
    is saved."""
    command = [sys.executable, "-m", "faconvlstm", *train_arguments(data, run_dir)]
    process = subprocess.Popen(command, env=subprocess_environment(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while epochs_done(run_dir) < 1:
        assert process.poll() is None, "training stopped before its first epoch was saved"
        assert time.monotonic() < deadline, "no epoch finished in 5 minutes"
        time.sleep(0.05)
    time.sleep(delay)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL


def final_weights(run_dir) -> list[np.ndarray]:
    return [np.asarray(w) for w in load_checkpoint(run_dir).get_weights()]


@on_the_default_backend_only(
    "resuming is file and seed handling, the same on every backend (determinism on JAX is "
    "tested below); three JAX processes would add a minute to CI"
)
def test_a_run_killed_by_sigkill_resumes_to_the_uninterrupted_result(tmp_path, synthetic_file):
    """The killed process is a child; the uninterrupted and the resumed runs train in this
    process, through the same command."""
    uninterrupted, killed = tmp_path / "uninterrupted", tmp_path / "killed"
    train_in_this_process(synthetic_file, uninterrupted)
    kill_during_second_epoch(synthetic_file, killed, delay=0.2)
    assert epochs_done(killed) < EPOCHS
    train_in_this_process(synthetic_file, killed)
    assert epochs_done(killed) == EPOCHS
    expected = json.loads((uninterrupted / PROGRESS_FILE).read_text())["history"]
    history = json.loads((killed / PROGRESS_FILE).read_text())["history"]
    np.testing.assert_allclose(history["loss"], expected["loss"], rtol=1e-5)
    np.testing.assert_allclose(history["val_loss"], expected["val_loss"], rtol=1e-5)
    for weight, reference in zip(final_weights(killed), final_weights(uninterrupted)):
        np.testing.assert_allclose(weight, reference, rtol=1e-4, atol=1e-6)
    assert not list(killed.glob(".*"))  # the resumed run cleaned nothing up it did not own
    assert len(list(killed.glob("checkpoint-*.keras"))) == 1


def test_the_same_seed_gives_the_same_embeddings(tmp_path, selection, trained_run):
    """A second run with the session run's settings, after whatever other tests did in this
    process, embeds exactly as the first."""
    again = fit(selection, tmp_path / "again", MODEL, SETTINGS, progress=False)
    first = embed(trained_run.run_dir)["embeddings"].values
    np.testing.assert_array_equal(embed(again.run_dir)["embeddings"].values, first)
    assert np.nanstd(first, axis=0).min() > 0
