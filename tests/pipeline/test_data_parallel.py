"""Data-parallel training: two devices give the loss curve of one with the same global batch."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import faconvlstm
from faconvlstm.cli import main
from faconvlstm.errors import InputError
from faconvlstm.layers.normalization import BatchStandardization
from faconvlstm.models import ModelConfig, build_autoencoder
from faconvlstm.pipeline import DataSelection, TrainingSettings, fit
from faconvlstm.pipeline.distributed import DataParallel, _global_moments, data_parallel
from faconvlstm.pipeline.runs import PROGRESS_FILE
from tests.conftest import MODEL, VARIABLES

#: Run in a fresh process whose XLA host platform has two CPU devices. 2000 has 366 days:
#: windows of 8 steps, 9 apart, give 40 windows, 5 full batches of 8 (nothing left out).
SCRIPT = textwrap.dedent("""
    import json, sys
    import faconvlstm
    from faconvlstm.pipeline import DataSelection, TrainingSettings, fit
    source, out = sys.argv[1:3]
    selection = DataSelection(source, ["t2m", "z@500", "sst"])
    model = {"filters": [4], "embedding_dim": 4, "window": 8}
    histories = {}
    for devices in (1, 2):
        settings = TrainingSettings(epochs=2, batch_size=8, window_stride=9, validation_years=1,
                                    min_epoch_steps=1, devices=devices)
        run = fit(selection, f"{out}/devices{devices}", model, settings, progress=False)
        histories[devices] = run.history
    try:
        fit(selection, f"{out}/odd", model,
            TrainingSettings(epochs=1, batch_size=7, devices=2), progress=False)
    except ValueError as error:
        histories["odd batch"] = str(error)
    print(json.dumps(histories))
""")


@pytest.mark.backend
@pytest.mark.skipif(faconvlstm.backend() != "jax", reason="keras.distribution runs on JAX")
def test_two_devices_give_the_loss_curve_of_one(synthetic_file, tmp_path):
    environment = {**os.environ, "KERAS_BACKEND": "jax",
                   "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(synthetic_file), str(tmp_path)],
        env=environment, capture_output=True, text=True, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    histories = json.loads(completed.stdout.strip().splitlines()[-1])
    one, two = histories["1"], histories["2"]
    assert len(two["loss"]) == 2
    for epoch in range(2):
        assert two["loss"][epoch] == pytest.approx(one["loss"][epoch], rel=1e-4)
    assert "cannot be split evenly across 2 devices" in histories["odd batch"]


def file_with_gaps(synthetic_file, path):
    """The session file with a third of the t2m values missing, at random cells and times, so
    that processes' shares of a batch differ in weight."""
    with xr.open_dataset(synthetic_file) as dataset:
        dataset = dataset.load()
    missing = np.random.default_rng(0).random(dataset["t2m"].shape) < 0.3
    dataset["t2m"] = dataset["t2m"].where(~missing)
    dataset.to_netcdf(path)
    return path


#: 2000 (366 days) gives 40 training windows of 8 steps, 9 apart; 2001 up to 16 November
#: (320 days) 40 validation windows, 8 apart: every batch of 8 complete, none left out.
TIME = ["2000-01-01", "2001-11-16"]


@pytest.mark.skipif(faconvlstm.backend() != "torch", reason="DistributedDataParallel is PyTorch's")
def test_two_torchrun_processes_give_the_loss_curves_of_one(synthetic_file, tmp_path):
    data = file_with_gaps(synthetic_file, tmp_path / "gaps.nc")
    two = tmp_path / "two"
    # The command launches the two processes from this one.
    launched = CliRunner().invoke(main, [
        "train", str(data), "--vars", ",".join(VARIABLES), "--time", ":".join(TIME), "--out",
        str(two), "--epochs", "2", "--filters", "4", "--embedding-dim", "4", "--window", "8",
        "--stride", "9", "--batch-size", "8", "--validation-years", "1", "--devices", "2",
    ])
    assert launched.exit_code == 0, launched.output[-3000:]
    assert launched.output.count("Trained ") == 1  # one summary
    one = fit(DataSelection(str(data), VARIABLES, time=TIME), tmp_path / "one", MODEL,
              TrainingSettings(epochs=2, batch_size=8, window_stride=9, validation_years=1),
              progress=False)
    # 5 batches of windows, served twice an epoch (at least 10 optimizer steps each).
    assert (one.train_steps, one.validation_steps) == (10, 5)
    history = json.loads((two / PROGRESS_FILE).read_text())["history"]
    np.testing.assert_allclose(history["loss"], one.history["loss"], rtol=1e-5)
    # Looser: weights whose gradient is zero in exact arithmetic (the head's projection bias,
    # removed by its batch normalization; the attention's key bias) follow rounding noise
    # under Adam, and the moving statistics validation uses follow them (6e-4 measured).
    np.testing.assert_allclose(history["val_loss"], one.history["val_loss"], rtol=2e-3)
    assert len(list(two.glob("checkpoint-*.keras"))) == 1


def test_more_devices_than_available_or_a_batch_that_does_not_split_are_refused(
    selection, tmp_path
):
    settings, expected = {
        "jax": (TrainingSettings(devices=4), "4 devices requested but only 1 found"),
        "torch": (TrainingSettings(devices=4, batch_size=6),
                  "batch of 6 windows cannot be split evenly across 4 devices"),
    }.get(faconvlstm.backend(), (TrainingSettings(devices=4), "needs the JAX or PyTorch"))
    with pytest.raises(ValueError, match=expected):
        fit(selection, tmp_path / "run", MODEL, settings, progress=False)
    assert not (tmp_path / "run").exists()


def test_processes_that_do_not_match_the_devices_are_refused(monkeypatch):
    if faconvlstm.backend() == "torch":
        with pytest.raises(ValueError, match="runs one process per device: launch with"):
            data_parallel(2, 8)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    if faconvlstm.backend() != "torch":
        with pytest.raises(ValueError, match="one of 2 processes.*start it once, without torchrun"):
            data_parallel(2, 8)
        return
    with pytest.raises(ValueError,
                       match="torchrun started 2 processes but devices is 1.*--devices 2"):
        data_parallel(1, 8)
    with pytest.raises(ValueError, match="cannot be split evenly across 2 devices"):
        data_parallel(2, 7)


def one_process_group(monkeypatch) -> DataParallel:
    """Settings whose scope joins a process group of this process alone (on a free port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for name, value in {"WORLD_SIZE": "1", "RANK": "0", "MASTER_ADDR": "127.0.0.1",
                        "MASTER_PORT": str(port)}.items():
        monkeypatch.setenv(name, value)
    return DataParallel(devices=2, rank=0, processes=2)


@pytest.mark.skipif(faconvlstm.backend() != "torch", reason="process groups are PyTorch's")
def test_the_scope_ends_the_process_group_it_joined_even_on_an_error(monkeypatch):
    import torch.distributed as dist

    parallel = one_process_group(monkeypatch)
    with pytest.raises(ValueError, match="inside"), parallel.scope():
        assert dist.is_initialized()
        raise ValueError("inside")
    assert not dist.is_initialized()
    # A group the caller joined itself is the caller's to end.
    dist.init_process_group("gloo")
    try:
        with parallel.scope():
            pass
        assert dist.is_initialized()
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(faconvlstm.backend() != "torch", reason="process groups are PyTorch's")
def test_prepare_takes_the_head_standardization_moments_over_the_process_group(monkeypatch):
    """The head's ``pooled_norm`` gets the global moments through its public hook; in a group
    of one process they are the batch's own, gradients included."""
    import torch

    parallel = one_process_group(monkeypatch)
    model = build_autoencoder(ModelConfig(channels=len(VARIABLES), grid=(4, 6), **MODEL))
    norm = model.get_layer("subspace_head").pooled_norm
    local = BatchStandardization(momentum=norm.momentum)
    assert type(norm) is BatchStandardization
    with parallel.scope():
        parallel.prepare(model)
        assert norm.moments is _global_moments
        inputs = torch.randn(3, 8, 10, dtype=torch.float32) * torch.linspace(0.5, 5.0, 10) + 2.0
        inputs.requires_grad_(True)
        mean, variance = norm.moments(inputs)
        expected_mean, expected_variance = local.moments(inputs)
        torch.testing.assert_close(mean, expected_mean, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(variance, expected_variance, rtol=1e-4, atol=1e-4)
        (gradient,) = torch.autograd.grad((mean + variance).sum(), inputs)
        (expected,) = torch.autograd.grad((expected_mean + expected_variance).sum(), inputs)
        torch.testing.assert_close(gradient, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("raised,passed_back", [
    (FileNotFoundError("no such file"), "FileNotFoundError"),
    (IsADirectoryError("a folder, not a file"), "OSError"),
    (InputError("a bad setting"), "InputError"),
    (type("NamedInputError", (InputError,), {})("a bad setting"), "InputError"),
])
def test_a_process_passes_back_an_input_error_as_a_type_launch_can_raise(
    tmp_path, monkeypatch, raised, passed_back
):
    from faconvlstm.pipeline import torchrun
    from faconvlstm.pipeline.runs import read_json, write_json

    def failing_fit(*args, **kwargs):
        raise raised

    monkeypatch.setattr(torchrun, "fit", failing_fit)
    monkeypatch.setenv("RANK", "0")
    spec, outcome = tmp_path / "spec.json", tmp_path / "outcome.json"
    write_json(spec, {"data": {"source": "x.nc", "variables": ["t2m"]}, "run_dir": "run",
                      "model": {}, "training": {}, "progress": False, "outcome": str(outcome)})
    assert torchrun.main(str(spec)) == 1
    assert read_json(outcome) == {"error": str(raised), "kind": passed_back}


def test_a_process_does_not_pass_back_an_error_that_is_not_the_input(tmp_path, monkeypatch):
    from faconvlstm.pipeline import torchrun
    from faconvlstm.pipeline.runs import write_json

    def failing_fit(*args, **kwargs):
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    monkeypatch.setattr(torchrun, "fit", failing_fit)
    monkeypatch.setenv("RANK", "0")
    spec, outcome = tmp_path / "spec.json", tmp_path / "outcome.json"
    write_json(spec, {"data": {"source": "x.nc", "variables": ["t2m"]}, "run_dir": "run",
                      "model": {}, "training": {}, "progress": False, "outcome": str(outcome)})
    with pytest.raises(UnicodeDecodeError):
        torchrun.main(str(spec))
    assert not outcome.exists()


@pytest.mark.parametrize("raised", [InputError("a bad setting"), FileNotFoundError("no file")])
def test_launch_raises_the_input_error_a_process_passed_back_as_its_type(
    tmp_path, monkeypatch, raised
):
    from faconvlstm.pipeline import launch
    from faconvlstm.pipeline.runs import read_json, write_json

    def processes(command, **kwargs):
        outcome = read_json(Path(command[-1]))["outcome"]
        write_json(Path(outcome), launch.error_outcome(raised))
        return subprocess.CompletedProcess(command, 1)

    monkeypatch.setattr(launch.subprocess, "run", processes)
    with pytest.raises(type(raised), match=str(raised)) as caught:
        launch.launch(DataSelection("x.nc", ["t2m"]), tmp_path / "run", {},
                      TrainingSettings(devices=2), progress=False)
    assert type(caught.value) is type(raised)
