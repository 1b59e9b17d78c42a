"""Skill at leads: shifted targets, causal delay embeddings, extended EOFs, the probes."""

import numpy as np
import pytest
import xarray as xr
from sklearn.decomposition import PCA
from sklearn.metrics import r2_score

from faconvlstm.data.calendar import lead_steps
from faconvlstm.errors import InputError
from faconvlstm.evaluation.skill import (
    PERSISTENCE,
    at_lead,
    delay_embedding,
    extended_eofs,
    held_out_r2,
    lead_r2,
    persistence_r2,
    seed_skill,
    skill_table,
)


def monthly(steps: int, drop: slice | None = None) -> xr.DataArray:
    time = xr.date_range("2000-01-01", periods=steps, freq="MS")
    index = np.arange(steps)
    if drop is not None:
        index = np.delete(index, index[drop])
    return xr.DataArray(time[index], dims="time")


def test_a_lead_never_crosses_a_gap():
    time = monthly(12, drop=slice(5, 7))  # runs of 5 and 5 months
    values = np.arange(10.0)
    shifted = at_lead(values, time, 2)
    np.testing.assert_array_equal(shifted[:3], [2, 3, 4])
    assert np.isnan(shifted[3:5]).all()
    np.testing.assert_array_equal(shifted[5:8], [7, 8, 9])
    assert np.isnan(shifted[8:]).all()
    np.testing.assert_array_equal(at_lead(values, time, 0), values)


def test_the_delay_embedding_looks_back_only_within_its_run():
    time = monthly(9, drop=slice(4, 5))  # runs of 4 and 4 months
    values = np.arange(8.0)[:, None] * np.array([1.0, 10.0])
    embedded = delay_embedding(values, time, 3)
    assert embedded.shape == (8, 6)
    np.testing.assert_array_equal(embedded[2], [2, 20, 1, 10, 0, 0])
    np.testing.assert_array_equal(embedded[7], [7, 70, 6, 60, 5, 50])
    assert np.isnan(embedded[[0, 1, 4, 5]]).any(axis=1).all()
    assert np.isfinite(embedded[[2, 3, 6, 7]]).all()


def test_extended_eofs_are_a_pca_of_the_past_window_fitted_on_the_training_rows(rng):
    time = monthly(60)
    pcs = rng.normal(size=(60, 4))
    components = extended_eofs(pcs, time, 3, 2, slice(0, 40))
    embedded = delay_embedding(pcs, time, 3)
    expected = PCA(2, random_state=0).fit(embedded[2:40]).transform(embedded[2:])
    np.testing.assert_allclose(components[2:], expected, rtol=1e-6, atol=1e-9)
    assert np.isnan(components[:2]).all()
    later = pcs.copy()
    later[50:] += 100.0  # the future of step 49 changes nothing up to it
    np.testing.assert_allclose(extended_eofs(later, time, 3, 2, slice(0, 40))[:50],
                               components[:50])
    assert extended_eofs(pcs, time, 3, 2, slice(0, 4)).shape == (60, 1)  # 2 full windows
    with pytest.raises(InputError, match="need at least 2 full windows in the training part; "
                                         "it has 1"):
        extended_eofs(pcs, time, 3, 2, slice(0, 3))


def test_persistence_is_the_value_now_as_the_forecast(rng):
    time = monthly(50)
    target = np.cumsum(rng.normal(size=50))
    expected = r2_score(target[3:], target[:-3])
    assert persistence_r2(target, time, 3) == pytest.approx(expected)


def test_a_probe_reads_a_future_that_the_features_determine(rng):
    time = monthly(200)
    features = rng.normal(size=(200, 3))
    target = np.zeros(200)
    target[2:] = features[:-2] @ np.array([1.0, -2.0, 0.5])
    assert lead_r2(features, target, time, 2) > 0.99
    assert held_out_r2(features, target, time, 2, cut=150) > 0.99
    assert lead_r2(features, target, time, 5) < 0.1
    assert held_out_r2(features, target, time, 5, cut=150) < 0.1


def test_the_held_out_probe_is_fitted_before_the_cut_and_scored_after_it(rng):
    """A relation that holds only after the cut cannot be learned by the held-out probe."""
    time = monthly(200)
    features = rng.normal(size=(200, 2))
    target = rng.normal(size=200)
    target[151:] = features[150:-1, 0]  # lead 1, only from step 150 on
    assert held_out_r2(features, target, time, 1, cut=150) < 0.1
    assert held_out_r2(features, target, time, 1, cut=150, rows=np.arange(200) >= 140) < 0.1
    assert np.isnan(held_out_r2(features, target, time, 1, cut=200))


def test_the_skill_table_scores_every_method_on_the_same_timesteps(rng):
    time = monthly(120)
    signal = np.sin(np.arange(120) / 4.0)
    targets = {"EOF PC 1": signal}
    sharp = signal[:, None] + 0.01 * rng.normal(size=(120, 2))
    late = sharp.copy()
    late[:10] = np.nan  # e.g. extended EOFs before the first full window
    features = {"model": [sharp, sharp + 0.01], "baseline": [late]}
    table = skill_table(features, targets, time, (0, 1, 3), cut=90)

    assert set(table) == {"held out", "blocked folds"}
    for scores in table.values():
        assert set(scores) == {"model", "baseline", PERSISTENCE}
        assert len(scores["model"]["EOF PC 1", 3]) == 2 and len(scores["baseline"]["EOF PC 1", 3]) == 1
        # the same rows: the model's first 10 steps are dropped as the baseline's are
        assert scores["model"]["EOF PC 1", 1][0] == pytest.approx(
            scores["baseline"]["EOF PC 1", 1][0], abs=0.02)
    rows = np.arange(120) >= 10
    assert table["blocked folds"]["model"]["EOF PC 1", 1][0] == pytest.approx(
        lead_r2(sharp, signal, time, 1, rows))
    assert seed_skill(table["held out"]["model"], ["EOF PC 1"], (1, 3)).shape == (2,)
    assert set(skill_table(features, targets, time, (1,), cut=120)) == {"blocked folds"}


@pytest.mark.parametrize("freq, leads", [("MS", (1, 3, 6, 9)), ("D", (1, 3, 7, 14)),
                                         ("YS", (1, 2, 3)), ("6h", (4, 12, 28, 56))])
def test_the_leads_follow_the_time_step(freq, leads):
    assert lead_steps(xr.DataArray(xr.date_range("2000-01-01", periods=40, freq=freq),
                                   dims="time")) == leads


def test_winter_means_are_yearly_steps():
    winters = xr.DataArray([np.datetime64(f"{year}-01-15") for year in range(1960, 2010)],
                           dims="time")
    assert lead_steps(winters) == (1, 2, 3)
