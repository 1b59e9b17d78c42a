"""Per-cluster squeeze-excitation weights and attention maps of a trained FA run."""

import keras
import numpy as np
import pytest

from faconvlstm.data.windows import WindowDataset, embedding_windows
from faconvlstm.errors import InputError
from faconvlstm.evaluation.mechanisms import _latest_attended, mechanism_maps
from faconvlstm.pipeline import fit
from faconvlstm.pipeline.embedding import TrainedRun
from tests.conftest import MODEL, SETTINGS, on_the_default_backend_only

# FAConvLSTM2D.inspect itself is tested on both backends (tests/layers/test_inspection.py).
pytestmark = on_the_default_backend_only("averaging per cluster does not depend on the backend")


def test_each_step_takes_the_latest_attention_at_or_before_it():
    assert _latest_attended(8, [3, 7]).tolist() == [-1, -1, -1, 0, 0, 0, 0, 1]


@pytest.fixture(scope="module")
def fields(selection):
    return selection.load().load()


def test_a_lone_timestep_cluster_holds_exactly_that_timesteps_values(trained_run, fields):
    """Cluster 1 holds one timestep: its means are what the layer did in that step's window."""
    run = TrainedRun(trained_run.run_dir)
    preprocessed = run.preprocess(fields)
    window = run.config.window
    starts, step_window, step_offset = embedding_windows(preprocessed["time"], window)
    lone = 100
    labels = np.zeros(fields.sizes["time"], dtype=int)
    labels[lone] = 1
    maps = mechanism_maps(run, fields, labels, k=2)

    batch = WindowDataset(preprocessed, window, starts[[step_window[lone]]], 1)[0]
    layer = run.autoencoder.get_layer("encoder_0")
    inspected = layer.inspect(keras.Model(run.autoencoder.inputs, layer.input)(batch))
    offset = step_offset[lone]
    expected_weights = keras.ops.convert_to_numpy(inspected["channel_weights"])[0, offset]
    np.testing.assert_allclose(maps["channel_weights"][1], expected_weights, rtol=1e-4)
    attended = [t for t in inspected["attention_steps"] if t <= offset][-1]
    expected_map = keras.ops.convert_to_numpy(inspected["attention"])[
        0, inspected["attention_steps"].index(attended)
    ]
    np.testing.assert_allclose(maps["attention"][1], expected_map * expected_map.size, rtol=1e-4)
    np.testing.assert_allclose(
        maps["projection"], keras.ops.convert_to_numpy(layer.cell.input_path.projection)
    )
    assert list(maps["channel"].values) == ["t2m", "z@500", "sst", "validity"]
    # Relative to uniform attention, every map averages 1.
    np.testing.assert_allclose(maps["attention"].mean(("lat", "lon")), 1.0, rtol=1e-4)


def test_switched_off_mechanisms_have_no_maps(tmp_path, selection, fields):
    options = {"squeeze_excitation": False, "attention_every": 0}
    run = fit(selection, tmp_path / "run", {**MODEL, "layer_options": options},
              SETTINGS, progress=False)
    labels = np.zeros(fields.sizes["time"], dtype=int)
    maps = mechanism_maps(TrainedRun(run.run_dir), fields, labels, k=1)
    assert "channel_weights" not in maps and "attention" not in maps
    assert maps["projection"].shape == (4, 8)


def test_a_convlstm_run_or_wrong_labels_are_refused(tmp_path, selection, fields, trained_run):
    run = fit(selection, tmp_path / "run", {**MODEL, "cell": "convlstm"}, SETTINGS,
              progress=False)
    with pytest.raises(InputError, match="only for FAConvLSTM2D runs"):
        mechanism_maps(TrainedRun(run.run_dir), fields, np.zeros(fields.sizes["time"], dtype=int),
                       k=1)
    with pytest.raises(InputError, match="labels has 3 entries but the data 731 timesteps"):
        mechanism_maps(TrainedRun(trained_run.run_dir), fields, np.zeros(3, dtype=int), k=1)
