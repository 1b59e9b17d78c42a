"""docs/tutorial.md runs as written: its Python blocks, in order, in one namespace."""

import re
from pathlib import Path

import pytest

from tests.conftest import on_the_default_backend_only

pytestmark = [pytest.mark.slow,
              on_the_default_backend_only("the tutorial uses the backend-independent API")]

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "tutorial.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_the_tutorials_code_runs_and_its_checks_hold(tmp_path, monkeypatch, capsys):
    blocks = python_blocks(TUTORIAL.read_text())
    assert len(blocks) == 7
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(TUTORIAL), "exec"), namespace)  # noqa: S102 -- our own docs

    printed = capsys.readouterr().out
    assert "('time', 'embedding') 372 center" in printed
    assert len(re.findall(r"lead \d: embedding R\^2 -?\d\.\d\d, persistence", printed)) == 3
    assert namespace["regimes"].composites["sst_anomaly"].attrs["units"] == "C"
    assert namespace["forecast"]["initial_time"].values[-1] == namespace["sst"]["time"].values[-1]
    assert not list(tmp_path.iterdir())  # nothing written but what was asked for
