"""The ``faconvlstm`` command end to end (synth -> train -> embed -> cluster) and its errors."""

import errno
import itertools
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import faconvlstm.pipeline
from faconvlstm.cli import main
from faconvlstm.data import synthetic
from faconvlstm.data.synthetic import make_synthetic_dataset
from faconvlstm.pipeline import training
from tests.conftest import on_the_default_backend_only

#: The command wraps the Python API, whose tests run on both backends.
pytestmark = on_the_default_backend_only("the CLI is the same on every backend")

K = 3
TRAIN_OPTIONS = [
    "--vars", "t2m,z@500,sst", "--epochs", "1", "--batch-size", "8", "--window", "8",
    "--stride", "8", "--filters", "4", "--embedding-dim", "4",
]


def invoke(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def assert_succeeded(result):
    assert result.exit_code == 0, result.output


def assert_one_line_error(result, pattern: str):
    """Exit status 1 and, as the last line of stderr, one ``Error:`` line matching ``pattern``."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and result.stderr.splitlines()[-1] == errors[0], result.stderr
    assert re.search(pattern, errors[0]), errors[0]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """Every command once on a tiny two-year noleap file; the paths they wrote."""
    folder = tmp_path_factory.mktemp("cli")
    paths = {
        "data": folder / "synthetic.nc",
        "run": folder / "run",
        "embeddings": folder / "embeddings.nc",
        "labels": folder / "labels.nc",
    }
    assert_succeeded(
        invoke("synth", paths["data"], "--years", 2, "--calendar", "noleap", "--nlat", 8,
               "--nlon", 12)
    )
    assert_succeeded(invoke("train", paths["data"], "--out", paths["run"], *TRAIN_OPTIONS))
    assert_succeeded(invoke("embed", paths["run"], "--out", paths["embeddings"]))
    assert_succeeded(invoke("cluster", paths["embeddings"], "--k", K, "--out", paths["labels"]))
    return paths


def test_every_command_writes_its_outputs_and_nothing_else(cli_run):
    folder = cli_run["data"].parent
    written = sorted(path.name for path in folder.iterdir())
    assert written == [
        "embeddings.nc", "labels.nc", "labels_composites.nc", "labels_composites.png", "run",
        "synthetic.nc",
    ]
    assert not list(cli_run["run"].glob(".*"))
    assert (folder / "labels_composites.png").read_bytes().startswith(b"\x89PNG")


def test_embeddings_are_time_by_embedding_on_the_source_noleap_time(cli_run):
    with xr.open_dataset(cli_run["data"]) as source, xr.open_dataset(cli_run["embeddings"]) as out:
        assert out["embeddings"].dims == ("time", "embedding")
        assert out.sizes == {"time": 730, "embedding": 4}
        assert out["time"].encoding["calendar"] == "noleap"
        np.testing.assert_array_equal(out["time"].values, source["time"].values)
        assert np.isfinite(out["embeddings"].values).all() and out.attrs["uncovered_timesteps"] == 0
        assert out.attrs["source"] == str(cli_run["data"])


def test_causal_embeddings_see_nothing_after_their_timestep(cli_run, tmp_path):
    """``--align end --stride 1``: each day from the window that ends at it, so embedding the
    data up to a day gives that day the embedding it has in the whole series."""
    full, cut = tmp_path / "full.nc", tmp_path / "cut.nc"
    assert_succeeded(invoke("embed", cli_run["run"], "--align", "end", "--stride", "1",
                            "--out", full))
    assert_succeeded(invoke("embed", cli_run["run"], "--align", "end", "--stride", "1",
                            "--time", "2000-01-01:2000-06-30", "--out", cut))
    with xr.open_dataset(full) as causal, xr.open_dataset(cut) as shorter, \
            xr.open_dataset(cli_run["embeddings"]) as centred:
        assert causal.attrs["alignment"] == "end" and centred.attrs["alignment"] == "center"
        days = shorter.sizes["time"]
        np.testing.assert_allclose(shorter["embeddings"].values,
                                   causal["embeddings"].values[:days], rtol=1e-4, atol=1e-5)
        assert not np.allclose(causal["embeddings"].values, centred["embeddings"].values)


def test_files_of_different_regions_train_with_one_warning_line(cli_run, tmp_path):
    with xr.open_dataset(cli_run["data"]) as source:
        source = source.load()
    source[["t2m"]].to_netcdf(tmp_path / "t2m.nc")
    source[["sst"]].isel(lat=slice(2, None), lon=slice(1, 9)).to_netcdf(tmp_path / "sst.nc")
    options = [option if option != "t2m,z@500,sst" else "t2m,sst" for option in TRAIN_OPTIONS]
    result = invoke("train", tmp_path / "t2m.nc", tmp_path / "sst.nc", "--out",
                    tmp_path / "run", *options)
    assert_succeeded(result)
    assert result.stderr.count("Warning:") == 1, result.stderr
    assert "cut to the region they share" in " ".join(result.stderr.split())


def test_a_file_of_bare_hour_counts_trains_and_embeds_through_time_options(cli_run, tmp_path):
    with xr.open_dataset(cli_run["data"]) as source:
        source = source[["t2m"]].isel(time=slice(0, 200)).load()
    days = np.arange(source.sizes["time"]) * 24.0
    source.drop_vars("time").rename(time="timestep").assign_coords(timestep=days).to_netcdf(
        tmp_path / "hours.nc"
    )
    options = [option if option != "t2m,z@500,sst" else "t2m" for option in TRAIN_OPTIONS]
    result = invoke("train", tmp_path / "hours.nc", "--out", tmp_path / "run", *options)
    assert_one_line_error(result, r"--time-dim, --time-units")

    assert_succeeded(invoke("train", tmp_path / "hours.nc", "--out", tmp_path / "run", *options,
                            "--time-dim", "timestep", "--time-units", "hours since 1996-01-05",
                            "--validation-years", "0"))
    assert_succeeded(invoke("embed", tmp_path / "run", "--out", tmp_path / "embeddings.nc"))

    with xr.open_dataset(tmp_path / "embeddings.nc") as embedded:
        assert embedded["time"].values[0] == np.datetime64("1996-01-05")
        assert embedded["time"].values[-1] == np.datetime64("1996-07-22")


def test_index_writes_a_box_index_that_evaluate_reads(cli_run, tmp_path):
    from faconvlstm.data.indices import read_indices

    out = tmp_path / "box.csv"
    assert_succeeded(invoke("index", cli_run["data"], "--var", "t2m", "--region=30,60,-60,0",
                            "--name", "box", "--out", out))
    series = read_indices(out)["box"]
    assert series.sizes["time"] == 730
    assert abs(float(series.mean())) < 0.1 * float(series.std())  # anomalies


def test_labels_carry_cf_flags_scores_persistence_and_transitions(cli_run):
    with xr.open_dataset(cli_run["labels"]) as labels:
        label = labels["label"]
        np.testing.assert_array_equal(label.attrs["flag_values"], np.arange(K))
        assert label.attrs["flag_meanings"].split() == [f"regime_{c}" for c in range(K)]
        sequence = label.values.astype(int)
        assert set(sequence) == set(range(K))
        assert -1 <= labels.attrs["silhouette"] <= 1
        assert labels.attrs["davies_bouldin"] > 0 and labels.attrs["calinski_harabasz"] > 0

        runs = [(c, len(list(run))) for c, run in itertools.groupby(sequence)]
        for c in range(K):
            lengths = [length for label_c, length in runs if label_c == c]
            assert labels["persistence"].values[c] == pytest.approx(np.mean(lengths))
        counts = np.zeros((K, K))
        for before, after in itertools.pairwise(sequence):
            counts[before, after] += 1
        transitions = labels["transition_probability"].values
        np.testing.assert_allclose(transitions, counts / counts.sum(axis=1, keepdims=True))
        np.testing.assert_allclose(transitions.sum(axis=1), 1.0)
        np.testing.assert_allclose(labels["frequency"], np.bincount(sequence) / sequence.size)


def test_composites_are_the_mean_fields_of_each_regime_in_physical_units(cli_run):
    composites_path = cli_run["labels"].with_name("labels_composites.nc")
    with (
        xr.open_dataset(cli_run["data"]) as source,
        xr.open_dataset(cli_run["labels"]) as labels,
        xr.open_dataset(composites_path) as composites,
    ):
        sequence = labels["label"].values.astype(int)
        fields = {"t2m": source["t2m"], "z_500": source["z"].sel(level=500), "sst": source["sst"]}
        for name, field in fields.items():
            assert composites[name].attrs["units"] == field.attrs["units"]
            assert composites[f"{name}_anomaly"].attrs["units"] == field.attrs["units"]
            for c in range(K):
                expected = field.isel(time=sequence == c).mean("time").values
                np.testing.assert_allclose(
                    composites[name].sel(cluster=c).values, expected, rtol=1e-5
                )
        assert np.isnan(composites["sst"].values).any()  # land stays NaN


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    """One file per kind of bad input, from a one-year synthetic dataset."""
    folder = tmp_path_factory.mktemp("bad")
    dataset = make_synthetic_dataset(years=1, nlat=8, nlon=12)
    time = dataset["time"].values
    swapped, repeated = time.copy(), time.copy()
    swapped[[10, 11]] = time[[11, 10]]
    repeated[11] = time[10]
    infinite = dataset["t2m"].copy()
    infinite[5, 2, 3] = np.inf
    files = {
        "no_time": dataset.isel(time=0, drop=True),
        "not_increasing": dataset.assign_coords(time=swapped),
        "duplicated": dataset.assign_coords(time=repeated),
        "all_nan": dataset.assign(t2m=dataset["t2m"] * np.nan),
        "other_grid": make_synthetic_dataset(years=1, nlat=10, nlon=12),
        "infinite": dataset.assign(t2m=infinite),
        "text": dataset.assign(t2m=dataset["t2m"].astype(str)),
        "empty": dataset.isel(time=slice(0, 0)),
        "single_step": dataset.isel(time=slice(0, 1)),
        "ten_steps": dataset.isel(time=slice(0, 10)),
        "calendars_a": make_synthetic_dataset(years=1, nlat=8, nlon=12, calendar="noleap"),
        "calendars_b": dataset.isel(time=slice(0, 10)).assign_coords(
            time=xr.date_range("2001-01-01", periods=10, freq="D")
        ),
    }
    for name, data in files.items():
        data.to_netcdf(folder / f"{name}.nc")
    with_units = dataset.isel(time=slice(0, 10)).assign_coords(time=np.arange(10.0))
    with_units["time"].attrs["units"] = "furlongs since 2000-01-01"
    with_units.to_netcdf(folder / "time_units.nc")
    whole = (folder / "other_grid.nc").read_bytes()
    (folder / "truncated.nc").write_bytes(whole[: len(whole) // 2])
    (folder / "unreadable.nc").write_text("this is not a NetCDF file\n")
    return folder


BAD_TRAINING_INPUTS = {
    "missing variable": ("good", ["--vars", "t2m,nope"], r"Variable 'nope' is not in the dataset"),
    "no time": ("no_time", [], r"No time axis found"),
    "not increasing": ("not_increasing", [], r"time axis is not increasing"),
    "duplicated time": ("duplicated", [], r"time axis has duplicated stamps"),
    "grid too small": ("good", ["--coarsen", "3"], r"grid 2x4 is too small for the model"),
    "all NaN": ("all_nan", [], r"Channel\(s\) t2m are all NaN"),
    "unreadable": ("unreadable", [], r"cannot read '.*unreadable.nc' as NetCDF"),
    "missing file": ("missing", [], r"No such file or Zarr store: '.*missing.nc'"),
    "too many validation years": ("good", ["--validation-years", "2"],
                                  r"Cannot hold out 2 validation year\(s\): the data span 2 "
                                  r"year\(s\) \(2000-2001\); hold out fewer"),
    "too short to validate": ("ten_steps", [], r"The data have only 10 timesteps; at least 14 "
                              r"are needed to train with validation .* --validation-years 0"),
    "infinite values": ("infinite", [], r"Channel\(s\) t2m hold infinite values"),
    "text variable": ("text", [], r"Variable 't2m' holds values of type <U\d+; expected numbers"),
    "empty file": ("empty", [], r"The time axis is empty; expected at least one timestep"),
    "single timestep": ("single_step", ["--validation-years", "0"],
                        r"No window of 2 or more timesteps fits in the data: its longest "
                        r"gap-free run has 1 timestep"),
    "time units": ("time_units", [], r"unable to decode time units 'furlongs since 2000-01-01'; "
                   r"expected CF units"),
    "mixed calendars": ("calendars_*", [], r"use different calendars \(.*noleap.*\); expected "
                        r"one calendar"),
    "truncated file": ("truncated", [], r"cannot read '.*truncated.nc' as NetCDF or Zarr"),
}


@pytest.mark.parametrize("case", BAD_TRAINING_INPUTS, ids=str)
def test_bad_training_input_is_a_one_line_error_and_writes_nothing(
    case, bad_files, synthetic_file, tmp_path
):
    name, options, pattern = BAD_TRAINING_INPUTS[case]
    data = synthetic_file if name == "good" else bad_files / f"{name}.nc"
    run_dir = tmp_path / "run"
    result = invoke("train", data, "--out", run_dir, *TRAIN_OPTIONS, *options)
    assert_one_line_error(result, pattern)
    assert not run_dir.exists()


def test_train_says_which_window_and_validation_it_used_and_why(synthetic_file, tmp_path):
    """50 days: the window shrinks from 8 to 7, said before training and in the summary."""
    result = invoke("train", synthetic_file, "--out", tmp_path / "run", *TRAIN_OPTIONS,
                    "--time", "2000-01-01:2000-02-19")
    assert_succeeded(result)
    text = " ".join(result.stderr.replace("│", " ").split())
    assert ("Warning: The window is 7 timesteps, not the 8 requested: two validation windows "
            "of more than 7 steps do not fit in the last 30 % of the 50 timesteps.") in text
    assert text.index("Warning:") < text.index("Trained")
    assert "window 7 steps (8 requested; two validation windows" in text
    assert "validation the last 14 of 50 timesteps (2000-02-06 .. 2000-02-19)" in text
    assert "UserWarning" not in result.stderr


def test_a_run_dir_of_another_configuration_is_a_one_line_error(cli_run):
    run_json = (cli_run["run"] / "run.json").read_text()
    result = invoke(
        "train", cli_run["data"], "--out", cli_run["run"], *TRAIN_OPTIONS, "--embedding-dim", 5
    )
    assert_one_line_error(result, r"holds a run with a different configuration "
                                  r"\(model.embedding_dim: 4 -> 5\)")
    assert (cli_run["run"] / "run.json").read_text() == run_json


def test_embed_errors_name_the_problem(cli_run, bad_files, tmp_path):
    out = tmp_path / "embeddings.nc"
    assert_one_line_error(
        invoke("embed", tmp_path, "--out", out), r"is not a run directory: it has no run.json"
    )
    assert_one_line_error(
        invoke("embed", cli_run["run"], bad_files / "other_grid.nc", "--out", out),
        r"The data's grid is 10x12 .* but the model was trained on 8x12",
    )
    assert not out.exists()


def test_cluster_errors_name_the_problem(cli_run, bad_files, tmp_path):
    out = tmp_path / "labels.nc"
    for arguments, pattern in [
        ([bad_files / "unreadable.nc"], r"Cannot read '.*unreadable.nc' as NetCDF"),
        ([cli_run["data"]], r"has no 'embeddings' variable of dims \(time, embedding\)"),
        ([cli_run["embeddings"], "--k", 1], r"k must be between 2 and 729 .*; got 1"),
        ([cli_run["embeddings"], "--k", 730], r"k must be between 2 and 729 .*; got 730"),
    ]:
        assert_one_line_error(invoke("cluster", *arguments, "--out", out), pattern)
    assert not list(tmp_path.iterdir())


def test_a_failed_write_leaves_the_previous_output_whole(cli_run, tmp_path, monkeypatch):
    out = tmp_path / "labels.nc"
    out.write_text("the previous labels")

    def disk_full(dataset, path, *args, **kwargs):
        with open(path, "w") as file:
            file.write("half a NetCDF")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", disk_full)
    result = invoke("cluster", cli_run["embeddings"], "--k", K, "--out", out)
    assert_one_line_error(
        result, r"No space left on the device while writing '.*labels.nc'; the previous version"
    )
    assert out.read_text() == "the previous labels"
    assert [path.name for path in tmp_path.iterdir()] == ["labels.nc"]


def test_a_read_only_output_directory_is_refused(cli_run, tmp_path, monkeypatch):
    read_only = tmp_path / "read-only"
    read_only.mkdir(mode=0o555)
    real_access = os.access

    def access(path, mode, **kwargs):  # what a non-root user sees, also when tests run as root
        if Path(path) == read_only and mode & os.W_OK:
            return False
        return real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    result = invoke("embed", cli_run["run"], "--out", read_only / "embeddings.nc")
    assert_one_line_error(result, r"Output directory '.*read-only' is not writable")
    assert not list(read_only.iterdir())


def test_a_damaged_or_missing_checkpoint_is_named(cli_run, tmp_path):
    run = shutil.copytree(cli_run["run"], tmp_path / "run")
    checkpoint = next(run.glob("checkpoint-*.keras"))
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    out = tmp_path / "embeddings.nc"
    assert_one_line_error(
        invoke("embed", run, "--out", out),
        rf"Cannot load the checkpoint '.*{checkpoint.name}' .*; it is damaged",
    )
    checkpoint.unlink()
    assert_one_line_error(
        invoke("embed", run, "--out", out),
        rf"names the checkpoint '{checkpoint.name}', which is missing",
    )
    assert not out.exists()


def test_a_batch_larger_than_the_free_memory_is_refused_before_training(
    synthetic_file, tmp_path, monkeypatch
):
    monkeypatch.setattr(training, "available_memory_bytes", lambda: 2**20)
    run_dir = tmp_path / "run"
    result = invoke("train", synthetic_file, "--out", run_dir, *TRAIN_OPTIONS)
    assert_one_line_error(
        result, r"A training batch of 8 windows of 8 steps on the 8x12 grid needs about "
                r"\d+ MiB, more than the 1 MiB of memory available; coarsen the grid"
    )
    assert not run_dir.exists()


def assert_reported_as_a_bug(result, error_type: str, message: str):
    """Exit status 2, the full traceback, then one line saying it is a bug to report."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert "Traceback (most recent call last):" in lines, result.stderr
    assert f"{error_type}: {message}" in lines, result.stderr
    assert lines[-1] == (
        f"Bug: faconvlstm stopped on an unexpected {error_type}; this is a bug in faconvlstm, "
        "please report it with the traceback above."
    )
    assert not any(line.startswith("Error:") for line in lines)


def test_an_unexpected_exception_is_a_traceback_and_a_request_for_a_bug_report(
    synthetic_file, tmp_path, monkeypatch
):
    def broken(*args, **kwargs):
        raise RuntimeError("an internal invariant failed")

    monkeypatch.setattr(faconvlstm.pipeline, "fit", broken)
    result = invoke("train", synthetic_file, "--out", tmp_path / "run", *TRAIN_OPTIONS)
    assert_reported_as_a_bug(result, "RuntimeError", "an internal invariant failed")
    assert "in broken" in result.stderr


def test_a_plain_value_error_from_a_library_is_a_bug_not_an_input_error(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        return np.reshape(np.zeros(3), (2, 2))

    monkeypatch.setattr(synthetic, "make_synthetic_dataset", broken)
    result = invoke("synth", tmp_path / "synthetic.nc")
    assert_reported_as_a_bug(
        result, "ValueError", "cannot reshape array of size 3 into shape (2,2)"
    )
    assert not list(tmp_path.iterdir())


def test_an_input_error_of_any_module_is_one_line(tmp_path):
    result = invoke("synth", tmp_path / "synthetic.nc", "--nlat", 2)
    assert_one_line_error(result, r"`nlat` must be an integer >= 4; received 2")
    assert not list(tmp_path.iterdir())


def test_train_and_evaluate_share_the_selection_and_model_options():
    shared = ["--time-dim", "--time-units", "--region", "--time", "--season", "--coarsen",
              "--log1p", "--filters", "--embedding-dim", "--window"]
    expected = {
        "train": ["--vars", "--out", *shared, "--epochs", "--patience", "--min-steps",
                  "--batch-size", "--learning-rate",
                  "--stride", "--validation-years", "--cell", "--attention-every",
                  "--anomalies", "--detrend", "--seed", "--precision", "--devices", "--help"],
        "evaluate": ["--vars", "--out", "--seeds", "--epochs", "--k", *shared, "--anomalies",
                     "--detrend",
                     "--ablations", "--index", "--validation-years", "--leads", "--help"],
    }
    for command, names in expected.items():
        result = invoke(command, "--help")
        assert_succeeded(result)
        listed = re.findall(r"^\s+(--[a-z0-9-]+)", result.output, flags=re.MULTILINE)
        assert sorted(listed) == sorted(names), command
