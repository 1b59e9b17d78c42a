"""Data-parallel training: two devices give the loss curve of one with the same global batch."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import faconvlstm
from faconvlstm.pipeline import TrainingSettings, fit
from tests.conftest import MODEL

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
        settings = TrainingSettings(epochs=3, batch_size=8, window_stride=9, devices=devices)
        run = fit(selection, f"{out}/devices{devices}", model, settings, progress=False)
        histories[devices] = run.history
    try:
        fit(selection, f"{out}/odd", model,
            TrainingSettings(epochs=1, batch_size=7, devices=2), progress=False)
    except ValueError as error:
        histories["odd batch"] = str(error)
    print(json.dumps(histories))
""")


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
    assert len(two["loss"]) == 3
    for epoch in range(3):
        assert two["loss"][epoch] == pytest.approx(one["loss"][epoch], rel=1e-4)
    assert "cannot be split evenly across 2 devices" in histories["odd batch"]


def test_more_devices_than_available_or_the_wrong_backend_are_refused(selection, tmp_path):
    expected = ("needs the JAX backend" if faconvlstm.backend() != "jax"
                else "4 devices requested but only 1 found")
    with pytest.raises(ValueError, match=expected):
        fit(selection, tmp_path / "run", MODEL, TrainingSettings(devices=4), progress=False)
    assert not (tmp_path / "run").exists()
