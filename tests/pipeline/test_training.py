"""fit (checkpoints, resume, interruption) and embed (every timestep from one centered window)."""

import dataclasses
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import xarray as xr

from faconvlstm.data.preprocessing import Preprocessor
from faconvlstm.data.splits import WindowAdapted, covers_all_longitudes
from faconvlstm.data.windows import WindowDataset
from faconvlstm.errors import InputError
from faconvlstm.models import embedding_model
from faconvlstm.pipeline import TrainingSettings, embed, fit
from faconvlstm.pipeline.embedding import TrainedRun
from faconvlstm.pipeline.runs import (
    PREPROCESSOR_FILE,
    PROGRESS_FILE,
    RUN_FILE,
    load_checkpoint,
)
from tests.conftest import MODEL, SETTINGS, on_the_default_backend_only

WINDOW = MODEL["window"]
STEPS_PER_EPOCH = 6


def copy_run(trained_run, tmp_path):
    return shutil.copytree(trained_run.run_dir, tmp_path / "run")


def progress(run_dir) -> dict:
    return json.loads((run_dir / PROGRESS_FILE).read_text())


def checkpoint(run_dir) -> Path:
    return run_dir / progress(run_dir)["checkpoint"]


def more_epochs(epochs: int) -> TrainingSettings:
    return dataclasses.replace(SETTINGS, epochs=epochs)


def test_fit_writes_a_complete_run(trained_run):
    run_dir = trained_run.run_dir
    for name in (RUN_FILE, PREPROCESSOR_FILE, "checkpoint-0001.keras", PROGRESS_FILE):
        assert (run_dir / name).is_file()
    assert not list(run_dir.glob(".*"))  # no temporary files left
    record = json.loads((run_dir / RUN_FILE).read_text())
    assert record["model"]["grid"] == [8, 12] and record["model"]["channels"] == 3
    assert (trained_run.train_steps, trained_run.validation_steps) == (STEPS_PER_EPOCH, 6)
    assert (trained_run.epochs_done, trained_run.resumed_from) == (1, 0)
    assert progress(run_dir) == {
        "epochs_done": 1, "checkpoint": "checkpoint-0001.keras", "history": trained_run.history
    }
    assert set(trained_run.history) == {"loss", "val_loss", "learning_rate", "epoch_seconds"}
    assert np.isfinite(trained_run.history["loss"][0])


def test_an_interrupted_run_resumes_from_its_last_finished_epoch(
    trained_run, selection, tmp_path, monkeypatch
):
    run_dir = copy_run(trained_run, tmp_path)
    saved = checkpoint(run_dir).read_bytes()

    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(WindowDataset, "__getitem__", killed)  # killed in the second epoch
    with pytest.raises(KeyboardInterrupt):
        fit(selection, run_dir, MODEL, more_epochs(2), progress=False)
    monkeypatch.undo()
    assert checkpoint(run_dir).read_bytes() == saved
    assert progress(run_dir)["epochs_done"] == 1
    # What a process killed while writing leaves behind: temporary files, never the target,
    # and a checkpoint that progress.json does not name yet.
    (run_dir / ".checkpoint-0002.keras.killed.tmp.keras").write_bytes(b"half a zip archive")
    (run_dir / f".{PROGRESS_FILE}.killed.tmp.json").write_text('{"epochs_done": 2, "hist')
    shutil.copy(checkpoint(run_dir), run_dir / "checkpoint-0002.keras")

    result = fit(selection, run_dir, MODEL, more_epochs(2), progress=False)
    assert (result.resumed_from, result.epochs_done) == (1, 2)
    assert len(result.history["loss"]) == 2
    assert result.history["loss"][0] == trained_run.history["loss"][0]
    assert progress(run_dir)["epochs_done"] == 2
    assert progress(run_dir)["history"] == result.history
    assert sorted(p.name for p in run_dir.glob("checkpoint-*")) == ["checkpoint-0002.keras"]
    # The optimizer state came back too: its step count runs on from the first epoch's.
    optimizer = keras.saving.load_model(checkpoint(run_dir)).optimizer
    assert int(optimizer.iterations) == 2 * STEPS_PER_EPOCH


def test_a_finished_run_does_no_more_training(trained_run, selection, tmp_path, monkeypatch):
    run_dir = copy_run(trained_run, tmp_path)
    saved = checkpoint(run_dir).read_bytes()
    monkeypatch.setattr(keras.Model, "fit", lambda *args, **kwargs: pytest.fail("trained again"))
    result = fit(selection, run_dir, MODEL, SETTINGS, progress=False)
    assert (result.resumed_from, result.epochs_done) == (1, 1)
    assert result.history == trained_run.history
    assert checkpoint(run_dir).read_bytes() == saved


def test_a_changed_configuration_is_refused_once_an_epoch_has_finished(trained_run, selection):
    changed = r"different configuration \(model.embedding_dim: 4 -> 5\)"
    with pytest.raises(ValueError, match=changed):
        fit(selection, trained_run.run_dir, {**MODEL, "embedding_dim": 5}, SETTINGS, progress=False)


def test_a_run_without_a_finished_epoch_starts_over(trained_run, selection, tmp_path):
    run_dir = tmp_path / "new"
    with pytest.raises(ValueError, match=r"Cannot hold out 3 validation year\(s\)"):
        fit(selection, run_dir, MODEL, dataclasses.replace(SETTINGS, validation_years=3),
            progress=False)
    assert not run_dir.exists()
    # Killed in the first epoch, before or between the checkpoint and the progress.
    killed_before = tmp_path / "killed_before"
    killed_before.mkdir()
    (killed_before / RUN_FILE).write_text(json.dumps({"model": {"window": 400}}))
    killed_between = copy_run(trained_run, tmp_path)
    (killed_between / PROGRESS_FILE).unlink()
    for run_dir in (killed_before, killed_between):
        result = fit(selection, run_dir, {**MODEL, "window": 16}, more_epochs(0), progress=False)
        assert result.resumed_from == 0
        assert json.loads((run_dir / RUN_FILE).read_text())["model"]["window"] == 16


def test_a_window_shortened_for_short_data_is_saved_used_and_resumed(selection, tmp_path):
    """50 days with the default split: two validation windows of 8 would take more than 30 %,
    so the run trains, records and embeds with windows of 7, and resumes as the same run."""
    short = dataclasses.replace(selection, time=["2000-01-01", "2000-02-19"])
    settings = TrainingSettings(epochs=1, batch_size=8, window_stride=4, min_epoch_steps=1)
    with pytest.warns(WindowAdapted, match="The window is 7 timesteps, not the 8 requested"):
        first = fit(short, tmp_path / "run", MODEL, settings, progress=False)
    record = json.loads((first.run_dir / RUN_FILE).read_text())
    assert record["model"]["window"] == 7 and record["training"]["validation_years"] is None
    assert record["split"] == first.split
    assert (first.split["steps"], first.split["cut"], first.split["window"]) == (50, 36, 7)
    assert (first.train_steps, first.validation_steps) == (1, 1)
    with pytest.warns(WindowAdapted):
        resumed = fit(short, first.run_dir, MODEL, dataclasses.replace(settings, epochs=2),
                      progress=False)
    assert (resumed.resumed_from, resumed.epochs_done) == (1, 2)
    assert resumed.split == first.split
    embeddings = embed(first.run_dir)
    assert embeddings.attrs["window"] == 7 and embeddings.attrs["uncovered_timesteps"] == 0


@pytest.fixture
def file_with_gaps(synthetic_file, tmp_path):
    """The first 140 days of the synthetic file without days 100-104 and 110-114: runs of 100,
    5 and 25 days."""
    with xr.open_dataset(synthetic_file) as dataset:
        kept = np.delete(np.arange(140), np.r_[100:105, 110:115])
        dataset.isel(time=kept).drop_encoding().to_netcdf(tmp_path / "gaps.nc")
    return tmp_path / "gaps.nc"


def test_embed_covers_every_timestep_once_from_its_centered_window(
    trained_run, selection, file_with_gaps, tmp_path
):
    run_dir = trained_run.run_dir
    embeddings = embed(run_dir, str(file_with_gaps), tmp_path / "embeddings.nc", stride=1)
    values = embeddings["embeddings"].values
    fields = selection.load(str(file_with_gaps))
    assert embeddings["embeddings"].dims == ("time", "embedding")
    assert values.shape == (fields.sizes["time"], MODEL["embedding_dim"])
    np.testing.assert_array_equal(embeddings["time"].values, fields["time"].values)
    short_run = np.zeros(len(values), bool)
    short_run[100:105] = True
    np.testing.assert_array_equal(np.isnan(values).any(axis=1), short_run)
    assert np.isnan(values[short_run]).all() and embeddings.attrs["uncovered_timesteps"] == 5

    fields = Preprocessor.load(run_dir / PREPROCESSOR_FILE).transform(fields)
    encoder = embedding_model(load_checkpoint(run_dir))
    runs = [(0, 100), (105, 130)]
    checked = [(0, 0), (50, 46), (99, 92), (105, 105), (108, 105), (115, 111), (129, 122)]
    for step, start in checked:
        run_start, run_stop = next(run for run in runs if run[0] <= step < run[1])
        assert start == np.clip(step - WINDOW // 2, run_start, run_stop - WINDOW)
        window = WindowDataset(fields, WINDOW, np.array([start]), batch_size=1)[0]
        expected = np.asarray(encoder.predict_on_batch(window))[0, step - start]
        np.testing.assert_allclose(values[step], expected, rtol=1e-4, atol=1e-5)


def test_embedding_chosen_timesteps_computes_only_their_windows(
    trained_run, selection, file_with_gaps, monkeypatch
):
    run = TrainedRun(trained_run.run_dir)
    fields = selection.load(str(file_with_gaps))
    everything = run.embed(fields)
    chosen = np.arange(fields.sizes["time"]) % 7 == 0
    predict, windows = run.encoder.predict_on_batch, []
    monkeypatch.setattr(run.encoder, "predict_on_batch",
                        lambda batch: windows.append(len(batch["frames"])) or predict(batch))
    values = run.embed(fields, timesteps=chosen)
    np.testing.assert_allclose(values[chosen], everything[chosen], rtol=1e-4, atol=1e-5)
    assert np.isnan(values[~chosen]).all()
    assert 0 < sum(windows) <= chosen.sum()
    with pytest.raises(InputError, match="mask of the 130 timesteps; got shape \\(7,\\)"):
        run.embed(fields, timesteps=chosen[:7])


@pytest.mark.parametrize(
    "lon, expected",
    [
        (np.arange(0.0, 360.0, 2.5), True),
        (np.arange(-180.0, 180.0, 0.25), True),
        (np.arange(-80.0, 40.0, 2.5), False),
        (np.array([10.0]), False),
    ],
)
def test_global_grids_are_recognized_by_their_longitudes(lon, expected):
    assert covers_all_longitudes(lon) is expected


@on_the_default_backend_only("reading old run files does not depend on the backend")
def test_a_run_written_before_numbered_checkpoints_and_precision_still_resumes(
    trained_run, selection, tmp_path
):
    run_dir = copy_run(trained_run, tmp_path)
    record = progress(run_dir)
    checkpoint(run_dir).rename(run_dir / "checkpoint.keras")
    del record["checkpoint"]
    (run_dir / PROGRESS_FILE).write_text(json.dumps(record))
    run = json.loads((run_dir / RUN_FILE).read_text())
    del run["model"]["precision"]  # a setting added later counts as its default
    (run_dir / RUN_FILE).write_text(json.dumps(run))
    result = fit(selection, run_dir, MODEL, more_epochs(2), progress=False)
    assert (result.resumed_from, result.epochs_done) == (1, 2)
    assert sorted(p.name for p in run_dir.glob("checkpoint*")) == ["checkpoint-0002.keras"]


@pytest.mark.parametrize("freq, window, horizon", [
    ("MS", 16, 6), ("MS", 8, 4), ("D", 16, 7), ("YS", 7, 0), ("YS", 16, 0), ("D", 2, 1),
])
def test_the_forecast_horizon_follows_the_time_step_within_half_the_window(freq, window,
                                                                          horizon):
    """Yearly steps (annual or seasonal means) get no forecast objective."""
    from faconvlstm.pipeline.training import default_horizon

    time = xr.DataArray(xr.date_range("2000-01-01", periods=60, freq=freq), dims="time")
    assert default_horizon(time, window) == horizon


def test_a_run_records_the_horizon_it_chose_and_keeps_a_given_one(trained_run, selection,
                                                                 tmp_path):
    record = json.loads((trained_run.run_dir / RUN_FILE).read_text())
    assert record["model"]["forecast_horizon"] == min(7, WINDOW // 2)  # daily data
    given = fit(selection, tmp_path / "given", {**MODEL, "forecast_horizon": 1},
                dataclasses.replace(SETTINGS, epochs=1), progress=False)
    assert json.loads((given.run_dir / RUN_FILE).read_text())["model"]["forecast_horizon"] == 1
    with pytest.raises(InputError, match="forecast_horizon must be below the window"):
        fit(selection, tmp_path / "long", {**MODEL, "forecast_horizon": WINDOW},
            SETTINGS, progress=False)
