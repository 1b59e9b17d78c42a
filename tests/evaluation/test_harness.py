"""The evaluation harness: its helpers, and ``faconvlstm evaluate`` end to end."""

import json
import re

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from faconvlstm.cli import main
from faconvlstm.data.synthetic import FACTORS, make_synthetic_dataset
from faconvlstm.errors import InputError
from faconvlstm.evaluation.harness import (
    EvaluationSettings,
    _model_robustness,
    _targets,
    _time_to_loss,
    convlstm_filters_matching,
    evaluate,
    pattern_correlation,
    robustness_timesteps,
)
from faconvlstm.models import ModelConfig, build_autoencoder
from tests.conftest import on_the_default_backend_only


def test_pattern_correlation_matches_clusters_one_to_one(rng):
    reference = rng.normal(size=(4, 50))
    assert pattern_correlation(reference[[2, 0, 3, 1]], reference) == pytest.approx(1.0)
    assert pattern_correlation(-reference, reference) < 0.5


@on_the_default_backend_only("parameter counts are the same on every backend")
def test_the_matched_twin_has_the_nearest_parameter_count():
    config = ModelConfig(channels=6, grid=(8, 8), filters=(16, 16))
    fa = build_autoencoder(config)
    target = sum(fa.get_layer(f"encoder_{i}").count_params() for i in range(2))

    def convlstm_parameters(filters):
        twin = build_autoencoder(ModelConfig(channels=6, grid=(8, 8), filters=(filters,) * 2,
                                             cell="convlstm"))
        return sum(twin.get_layer(f"encoder_{i}").count_params() for i in range(2))

    chosen = convlstm_filters_matching(config, target)
    gaps = {f: abs(convlstm_parameters(f) - target) for f in (chosen - 1, chosen, chosen + 1)}
    assert gaps[chosen] == min(gaps.values())


def test_evaluate_says_once_how_the_window_adapted(monkeypatch, tmp_path):
    """Every model splits the same data: one WindowAdapted warning, not one per model."""
    import warnings

    from faconvlstm.data.splits import WindowAdapted
    from faconvlstm.evaluation import harness

    def adapting_fit(data, run_dir, model, training, progress):
        warnings.warn("The window is 8 timesteps, not the 16 requested", WindowAdapted)
        return run_dir

    monkeypatch.setattr(harness, "fit", adapting_fit)
    settings = EvaluationSettings(seeds=2)
    variants = {name: {} for name in (*harness.MAIN_MODELS, "FA, no peepholes")}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = harness._train(None, tmp_path, settings, variants, progress=False)
    assert len(results) == 7
    assert [type(w.message) for w in caught] == [WindowAdapted]


def test_the_ablations_change_one_setting_each_on_top_of_fa():
    from faconvlstm.evaluation.harness import ABLATIONS, DYNAMICS_ABLATIONS, model_variants

    config = ModelConfig(channels=2, grid=(8, 8), filters=(12, 24))
    variants = model_variants(config, ablations=True)
    ablations = {name: settings for name, settings in variants.items() if name.startswith("FA, ")}
    assert set(ablations) == ({f"FA, {name}" for name in ABLATIONS} | set(DYNAMICS_ABLATIONS)
                              | {"FA, full-width bottleneck"})
    assert ablations["FA, full-width bottleneck"] == {"layer_options": {"bottleneck": 24}}
    assert ablations["FA, encoder off (input skip alone)"] == {"encoder": False,
                                                               "input_skip": True}
    assert ablations["FA, reconstruction only"] == {"forecast_horizon": 0}
    others = {name: settings for name, settings in ablations.items()
              if name != "FA, encoder off (input skip alone)"}
    assert all(len(settings) == 1 for settings in others.values())
    assert set(model_variants(config, ablations=False)) == {
        "FA", "ConvLSTM2D", "ConvLSTM2D (matched)"}


def test_the_dynamics_ablations_train_with_every_seed_the_mechanisms_with_one(monkeypatch,
                                                                            tmp_path):
    from faconvlstm.evaluation import harness

    monkeypatch.setattr(harness, "fit", lambda data, run_dir, model, training, progress: model)
    config = ModelConfig(channels=2, grid=(8, 8))
    results = harness._train(None, tmp_path, EvaluationSettings(seeds=3),
                             harness.model_variants(config, ablations=True), progress=False)
    seeds = {}
    for name, seed in results:
        seeds.setdefault(name, []).append(seed)
    for name in (*harness.MAIN_MODELS, *harness.DYNAMICS_ABLATIONS):
        assert seeds.pop(name) == [0, 1, 2]
    assert seeds and all(trained == [0] for trained in seeds.values())
    assert results["FA, input skip off", 2] == {"input_skip": False}


def test_time_to_a_target_loss_adds_up_epoch_times():
    history = {"loss": [1.0, 0.6, 0.4, 0.5], "epoch_seconds": [2.0, 3.0, 4.0, 5.0]}
    assert _time_to_loss(history, 0.6) == 5.0
    assert _time_to_loss(history, 0.4) == 9.0
    assert np.isnan(_time_to_loss(history, 0.1))


class _StubRun:
    """Embeds each timestep either as its field's spatial means or as a fixed random code."""

    def __init__(self, faithful: bool):
        self.faithful = faithful

    def embed(self, fields: xr.DataArray, timesteps: np.ndarray | None = None) -> np.ndarray:
        if self.faithful:
            values = fields.mean(["lat", "lon"], skipna=True).values
        else:
            values = np.random.default_rng(0).normal(size=(fields.sizes["time"], 3))
        return values if timesteps is None else np.where(timesteps[:, None], values, np.nan)


def test_robustness_keeps_the_signal_beside_the_agreement(rng):
    """An embedding that ignores its input agrees perfectly under every perturbation: only
    the probe column shows that it carries nothing."""
    time = xr.date_range("2000-01-01", periods=120, freq="D")
    signal = np.cumsum(rng.normal(size=(120, 3)), axis=0)
    values = signal[:, None, None, :] + 0.1 * rng.normal(size=(120, 6, 8, 3))
    fields = xr.DataArray(values, dims=("time", "lat", "lon", "channel"),
                          coords={"time": time, "channel": ["a", "b", "c"]})
    targets = {"signal": signal[:, 0]}
    settings = EvaluationSettings(noise_levels=(0.5,), missing_fractions=(0.25,), k=3)
    for faithful in (True, False):
        run = _StubRun(faithful)
        curves = _model_robustness(run, run.embed(fields), fields, targets, settings)
        assert set(curves) == {"gaussian noise", "missing cells", "missing timesteps"}
        for curve in curves.values():
            (clean_level, *_, clean_probe), (level, cka, agreement, probe) = curve
            assert clean_level == 0.0 and level > 0
            if faithful:
                assert clean_probe > 0.9 and probe > 0.5
            else:
                assert cka == pytest.approx(1.0) and agreement == pytest.approx(1.0)
                assert clean_probe < 0.2 and probe < 0.2


@pytest.mark.parametrize("steps, sample, chosen", [(1461, 512, 731), (1000, 512, 1000),
                                                  (3650, 512, 522), (54, 512, 54)])
def test_robustness_embeds_about_the_sample_size_of_evenly_spaced_timesteps(
    steps, sample, chosen
):
    mask = robustness_timesteps(steps, sample)
    assert mask.shape == (steps,) and mask.sum() == chosen and mask[0]
    assert len(set(np.diff(np.flatnonzero(mask)))) <= 1


def test_robustness_is_measured_on_the_sampled_timesteps_only(rng):
    time = xr.date_range("2000-01-01", periods=120, freq="D")
    fields = xr.DataArray(rng.normal(size=(120, 4, 5, 2)), dims=("time", "lat", "lon", "channel"),
                          coords={"time": time, "channel": ["a", "b"]})
    asked = []

    class Recording(_StubRun):
        def embed(self, fields, timesteps=None):
            asked.append(timesteps)
            return super().embed(fields, timesteps)

    run = Recording(True)
    settings = EvaluationSettings(noise_levels=(0.5,), missing_fractions=(0.25,), k=3,
                                  robustness_timesteps=40)
    _model_robustness(run, _StubRun(True).embed(fields), fields,
                      {"a": fields.mean(["lat", "lon"]).values[:, 0]}, settings)
    assert len(asked) == 3
    for timesteps in asked:
        np.testing.assert_array_equal(timesteps, np.arange(120) % 3 == 0)


SECTIONS = [
    "## Efficiency",
    "## Stability across seeds",
    "## Interpretability: linear-probe R^2 of the leading 3 EOF PCs",
    "### Inside FA (seed 0)",
    "## Skill at leads",
    "### Held out",
    "### Blocked folds",
    "## Robustness to perturbed inputs",
    "## Ablations",
    "## Regimes",
]


def test_ground_truth_factors_are_the_probe_targets_when_the_data_has_them():
    time = xr.date_range("2001-01-01", periods=6, freq="D")
    source = xr.Dataset(
        {f"factor_{name}": ("time", np.arange(6) % 2) for name in FACTORS}, {"time": time}
    )
    targets = _targets(source, np.zeros((6, 4)), source["time"].isel(time=slice(1, 5)))
    assert list(targets) == list(FACTORS)
    assert targets["regime"].shape == (4, 2)  # one-hot
    np.testing.assert_array_equal(targets["enso"], [1, 0, 1, 0])
    pcs = np.arange(24.0).reshape(6, 4)
    assert list(_targets(None, pcs, source["time"])) == ["EOF PC 1", "EOF PC 2", "EOF PC 3"]


@on_the_default_backend_only("its models compile for minutes on JAX CPU")
def test_evaluate_writes_every_section_of_the_report(tmp_path, monkeypatch):
    """On a CF file without ground truth, as real data: the probes target EOF PCs. The peak
    memory, measured in fresh processes, has its own test below."""
    from faconvlstm.evaluation import harness

    monkeypatch.setattr(harness, "peak_training_memory", lambda settings, batch: 1.0)
    synthetic = make_synthetic_dataset(years=2, nlat=8, nlon=12)
    data = tmp_path / "tiny.nc"
    synthetic.drop_vars([f"factor_{name}" for name in FACTORS]).to_netcdf(data)
    index = tmp_path / "enso.csv"
    synthetic["factor_enso"].resample(time="MS").mean().to_dataframe().to_csv(index)
    out = tmp_path / "report"
    result = CliRunner().invoke(main, [
        "evaluate", str(data), "--vars", "t2m,msl,sst", "--out", str(out), "--seeds", "2",
        "--epochs", "1", "--filters", "4", "--embedding-dim", "4", "--window", "8",
        "--index", str(index), "--time", "2000-01-01:2000-06-30", "--no-ablations",
    ])
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    for section in SECTIONS:
        assert section in report
    pictures = ("losses.png", "cka_seeds.png", "robustness.png", "fa_regimes_composites.png",
                "se_weights.png", "attention_maps.png")
    for picture in pictures:
        assert (out / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert picture in report
    for row in ("| FA |", "| ConvLSTM2D |", "| ConvLSTM2D (matched) |", "| EOF |",
                "| seasonal encoding alone |", "| FA, clean |"):
        assert row in report
    assert re.search(r"\| FA \| -?\d", report)
    assert "EOF PC 1" in report
    assert "index factor_enso" in report
    assert "--seeds 2" in report  # the command is named
    assert f"--index {index}" in report  # a repeatable option once per value
    skill = json.loads((out / "skill.json").read_text())
    assert skill["leads"] == [0, 1, 3, 7, 14]
    assert set(skill["skill"]["held out"]) == {
        "FA", "ConvLSTM2D", "ConvLSTM2D (matched)", "EOF PCs at t",
        "extended EOFs of the window", "persistence"}
    assert len(skill["skill"]["blocked folds"]["FA"]["index factor_enso"]["3"]) == 2  # seeds
    for stage in (*harness.STAGES, "all measurements after training"):
        assert re.search(rf"\| {re.escape(stage)} \| \d", report), stage


def test_evaluate_needs_two_seeds(tmp_path):
    result = CliRunner().invoke(main, ["evaluate", "--out", str(tmp_path), "--seeds", "1"])
    assert result.exit_code == 1
    assert "seeds must be at least 2" in result.output


def test_a_bad_robustness_sample_stops_evaluate_before_anything_is_written(tmp_path):
    settings = EvaluationSettings(seeds=2, robustness_timesteps=0)
    with pytest.raises(InputError, match="`robustness_timesteps` must be a positive integer"):
        evaluate(None, tmp_path / "report", settings)
    assert not (tmp_path / "report").exists()


def test_a_bad_index_file_stops_evaluate_before_training(tmp_path, synthetic_file):
    (tmp_path / "phases.csv").write_text("date,phase\n2000-01-01,warm\n2000-01-02,cold\n")
    result = CliRunner().invoke(main, [
        "evaluate", str(synthetic_file), "--vars", "t2m", "--out", str(tmp_path / "report"),
        "--index", str(tmp_path / "phases.csv"),
    ])
    assert result.exit_code == 1
    assert "columns ['phase'] are not numeric" in result.output
    assert not (tmp_path / "report" / "runs").exists()


def test_the_skill_verdicts_read_the_table():
    from faconvlstm.evaluation.report import _skill_verdicts

    leads = (0, 1, 3, 6, 9)
    pcs = ["EOF PC 1", "EOF PC 2", "EOF PC 3"]

    def method(value, seeds=(0.0,)):
        return {(target, lead): [value + seed for seed in seeds]
                for target in [*pcs, "index nino34"] for lead in leads}

    scores = {
        "FA": method(0.5, seeds=(-0.02, 0.0, 0.02)),
        "FA, encoder off (input skip alone)": method(0.3, seeds=(-0.01, 0.0, 0.01)),
        "EOF PCs at t": method(0.4), "extended EOFs of the window": method(0.6),
        "persistence": method(-0.5), "ConvLSTM2D": method(0.5),
    }
    lines = _skill_verdicts(scores, leads, ["index nino34"])
    assert lines[0].startswith("- The encoder's share (PC 1-3, leads 3, 6): FA 0.500, "
                               "encoder off 0.300, difference +0.200")
    assert "2 standard deviations of the seeds 0.033" in lines[0]
    assert lines[1] == ("- PC 1-3, leads 3, 6, 9: FA 0.500; above: EOF PCs at t, persistence; "
                        "at or below: extended EOFs of the window, ConvLSTM2D.")
    assert lines[2].startswith("- index nino34, leads 3, 6, 9: FA 0.500;")
    assert lines[3] == "- The state at t (lead 0) of PC 1-3: 0.500 / 0.500 / 0.500."
