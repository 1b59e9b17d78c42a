"""The package picks the fastest CPU backend only when nothing else chose one."""

import json
import os
import subprocess
import sys

import pytest

import faconvlstm
from faconvlstm import backends

PRINT_BACKEND = "import faconvlstm; print(faconvlstm.backend())"


def run_fresh(env_overrides: dict, tmp_path) -> str:
    """The backend a fresh interpreter picks, with a clean Keras home."""
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env.update(KERAS_HOME=str(tmp_path / "keras_home"), **env_overrides)
    result = subprocess.run([sys.executable, "-c", PRINT_BACKEND], capture_output=True,
                            text=True, env=env, timeout=300, check=True)
    return result.stdout.strip().splitlines()[-1]


def test_unset_backend_defaults_to_torch(tmp_path):
    assert run_fresh({}, tmp_path) == "torch"


def test_keras_backend_variable_wins(tmp_path):
    assert run_fresh({"KERAS_BACKEND": "jax"}, tmp_path) == "jax"


def test_keras_config_file_wins(tmp_path):
    home = tmp_path / "keras_home"
    home.mkdir()
    (home / "keras.json").write_text(json.dumps({"backend": "jax"}))
    assert run_fresh({}, tmp_path) == "jax"


def test_keras_config_naming_a_missing_backend_is_not_a_choice(tmp_path):
    """Keras writes "tensorflow" into a new keras.json; without TensorFlow that is no choice."""
    home = tmp_path / "keras_home"
    home.mkdir()
    (home / "keras.json").write_text(json.dumps({"backend": "not_an_installed_backend"}))
    assert run_fresh({}, tmp_path) == "torch"


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
