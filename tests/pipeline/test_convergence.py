"""The stopping rule's decisions from a loss history, and the variance-explained measures."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from faconvlstm.pipeline import fit
from faconvlstm.pipeline.convergence import (
    BEST_WEIGHTS_FILE,
    LEARNING_RATE_KEY,
    Convergence,
    StoppingRule,
    best_epoch,
    eof_r2,
    epochs_without_improvement,
    has_converged,
)
from tests.conftest import MODEL, SETTINGS


def test_an_improvement_must_exceed_the_tolerance():
    assert best_epoch([1.0, 0.5, 0.499, 0.6]) == 1
    assert best_epoch([1.0, 0.5, 0.4, 0.6]) == 2
    assert best_epoch([np.nan, np.nan]) == -1


def test_the_validation_loss_is_watched_when_there_is_one():
    history = {"loss": [1.0, 0.9, 0.8, 0.7], "val_loss": [1.0, 0.5, 0.6, 0.7]}
    assert epochs_without_improvement(history) == 2
    assert epochs_without_improvement({"loss": history["loss"]}) == 0


def test_no_stop_before_the_minimum_number_of_steps():
    history = {"loss": [1.0, 0.5, *[0.6] * 6]}
    assert has_converged(history, StoppingRule(patience=6, min_steps=8, steps_per_epoch=1))
    assert not has_converged(history, StoppingRule(patience=6, min_steps=9, steps_per_epoch=1))
    assert not has_converged(history, StoppingRule(patience=7, min_steps=1, steps_per_epoch=1))


def test_eof_r2_is_the_pca_reconstruction_share():
    rng = np.random.default_rng(0)
    patterns = rng.normal(size=(2, 3 * 4))
    train = (rng.normal(size=(40, 2)) @ patterns).reshape(40, 3, 4, 1)
    test = (rng.normal(size=(10, 2)) @ patterns).reshape(10, 3, 4, 1)
    area = np.cos(np.deg2rad([-30.0, 0.0, 30.0]))
    assert eof_r2(train, test, area, 2) == pytest.approx(1.0, abs=1e-9)
    one_mode = eof_r2(train, test, area, 1)
    assert 0.0 < one_mode < 1.0
    train[5, 0, 0], test[:, 0, 0] = np.nan, 1e3  # a cell invalid in training is left out
    assert eof_r2(train, test, area, 2) == pytest.approx(1.0, abs=1e-9)


def test_a_plateau_halves_the_learning_rate_and_ends_training(selection, tmp_path):
    """With a learning rate too small to improve the loss, training stops after the best
    epoch plus ``patience`` epochs, halving the rate on every plateau, and says it converged."""
    settings = dataclasses.replace(
        SETTINGS, epochs=20, learning_rate=1e-9, patience=3, min_steps=1
    )
    result = fit(selection, tmp_path / "run", MODEL, settings, progress=False)
    assert result.converged
    assert result.epochs_done == 4
    assert result.history[LEARNING_RATE_KEY] == pytest.approx([1e-9, 1e-9, 1e-9, 5e-10])
    assert not (tmp_path / "run" / BEST_WEIGHTS_FILE).exists()
    assert -1.0 < result.variance_explained < 1.0 and 0.0 < result.eof_variance_explained <= 1.0
    again = fit(selection, tmp_path / "run", MODEL, settings, progress=False)
    assert (again.resumed_from, again.epochs_done, again.converged) == (4, 4, True)


def test_the_best_weights_are_restored_at_the_end(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    history: dict[str, list[float]] = {}
    rule = StoppingRule(patience=10, min_steps=1)
    callback = Convergence(tmp_path, history, rule, last_epoch=3)
    callback.set_model(model)
    kernels = []
    for epoch, loss in enumerate([1.0, 0.5, 0.7]):
        model.layers[0].kernel.assign(np.full((2, 1), float(epoch)))
        kernels.append(model.get_weights()[0])
        logs = {"loss": loss}
        callback.on_epoch_end(epoch, logs)
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
    assert model.stop_training
    np.testing.assert_array_equal(model.get_weights()[0], kernels[1])
