"""The package picks the fastest CPU backend only when nothing else chose one."""

import json
import os
import subprocess
import sys

import pytest

import faconvlstm
from faconvlstm import backends


def test_unset_backend_defaults_to_torch(tmp_path):
    """End to end, in a fresh interpreter with a clean Keras home."""
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["KERAS_HOME"] = str(tmp_path / "keras_home")
    result = subprocess.run(
        [sys.executable, "-c", "import faconvlstm; print(faconvlstm.backend())"],
        capture_output=True, text=True, env=env, timeout=300, check=True,
    )
    assert result.stdout.strip().splitlines()[-1] == "torch"


def choose_before_keras(monkeypatch, tmp_path, keras_json: dict | None = None) -> str | None:
    """What :func:`backends.choose_default_backend` leaves in ``KERAS_BACKEND`` when Keras is
    not imported yet, with a Keras home holding ``keras_json`` (none when None)."""
    home = tmp_path / "keras_home"
    home.mkdir()
    if keras_json is not None:
        (home / "keras.json").write_text(json.dumps(keras_json))
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.delitem(sys.modules, "keras")
    backends.choose_default_backend()
    return os.environ.get("KERAS_BACKEND")


def test_keras_backend_variable_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert choose_before_keras(monkeypatch, tmp_path) == "jax"


def test_keras_config_file_wins(monkeypatch, tmp_path):
    """The package sets nothing, so Keras takes the file's backend."""
    monkeypatch.delenv("KERAS_BACKEND")
    assert choose_before_keras(monkeypatch, tmp_path, {"backend": "jax"}) is None


def test_keras_config_naming_a_missing_backend_is_not_a_choice(monkeypatch, tmp_path):
    """Keras writes "tensorflow" into a new keras.json; without TensorFlow that is no choice."""
    monkeypatch.delenv("KERAS_BACKEND")
    keras_json = {"backend": "not_an_installed_backend"}
    assert choose_before_keras(monkeypatch, tmp_path, keras_json) == "torch"


def test_choose_default_backend_does_nothing_once_keras_is_imported(monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert "keras" in sys.modules
    assert backends.choose_default_backend() is None
    assert "KERAS_BACKEND" not in os.environ


def test_backend_reports_the_active_backend():
    assert faconvlstm.backend() == os.environ["KERAS_BACKEND"]


def test_slow_backend_warns_on_cpu():
    if faconvlstm.backend() != "jax":
        pytest.skip("the warning is for the JAX backend on CPU")
    with pytest.warns(UserWarning, match="set KERAS_BACKEND=torch for CPU training"):
        backends.warn_if_slow_backend()
