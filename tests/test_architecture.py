"""The package's dependencies run one way, read from the import statements of its source.

``layers/`` (the standalone drop-in) imports nothing of ours but the root modules
``errors`` and ``validation``; ``data/`` knows nothing of the model, the pipeline or the
evaluation; nothing imports the command line; and no module imports itself through others.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "faconvlstm"
#: Root modules every part may import (``errors`` and ``validation`` import only each other).
ROOT_MODULES = {"faconvlstm.errors", "faconvlstm.validation"}


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Each module of the package at ``root`` -> the package's modules it imports.

    ``from a import b`` counts as importing ``a.b`` where that is a module, else ``a``;
    imports inside functions count too (a lazy import does not hide a dependency).
    """
    modules = {module_name(path, root): path for path in root.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}".rstrip(".")
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            else:
                continue
            graph[name] |= {target for target in targets if target in modules} - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One import cycle through each module that is on one (depth-first search)."""
    found, state = [], {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                found.append(trail[trail.index(target):] + [target])
            elif target not in state:
                visit(target, trail + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports that break the layering described in the module docstring."""
    broken = []
    for module, targets in graph.items():
        for target in targets:
            if target.startswith("faconvlstm.cli") and module != "faconvlstm.__main__":
                broken.append(f"{module} imports the command line ({target})")
            if module.startswith("faconvlstm.layers") and not (
                target.startswith("faconvlstm.layers") or target in ROOT_MODULES
            ):
                broken.append(f"{module} (the standalone layer) imports {target}")
            if module in ROOT_MODULES and target not in ROOT_MODULES:
                broken.append(f"{module} (a root module) imports {target}")
            if module.startswith("faconvlstm.data") and target.split(".")[1] in {
                "layers", "models", "pipeline", "evaluation", "backends"
            }:
                broken.append(f"{module} (data handling) imports {target}")
    return sorted(broken)


def test_the_package_keeps_its_layering():
    assert violations(import_graph(PACKAGE)) == []


def test_the_package_has_no_import_cycle():
    assert cycles(import_graph(PACKAGE)) == []


@pytest.fixture
def toy_package(tmp_path) -> Path:
    """A package breaking every rule: a cycle, a layer importing data, data importing the
    pipeline, a layer importing the CLI."""
    root = tmp_path / "faconvlstm"
    files = {
        "__init__.py": "",
        "errors.py": "",
        "validation.py": "from faconvlstm.errors import InputError\n",
        "cli.py": "",
        "layers/__init__.py": "",
        "layers/cell.py": "from faconvlstm import validation\nfrom . import gates\n",
        "layers/gates.py": "def f():\n    from faconvlstm.data.io import read\n",
        "data/__init__.py": "",
        "data/io.py": "from ..pipeline import training\n",
        "pipeline/__init__.py": "from faconvlstm.pipeline.training import fit\n",
        "pipeline/training.py": "import faconvlstm.cli\nfrom faconvlstm.pipeline import runs\n",
        "pipeline/runs.py": "from faconvlstm.pipeline.training import fit\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_checks_find_what_breaks_the_rules(toy_package):
    graph = import_graph(toy_package)
    assert graph["faconvlstm.layers.cell"] == {"faconvlstm.validation", "faconvlstm.layers.gates"}
    assert violations(graph) == [
        "faconvlstm.data.io (data handling) imports faconvlstm.pipeline.training",
        "faconvlstm.layers.gates (the standalone layer) imports faconvlstm.data.io",
        "faconvlstm.pipeline.training imports the command line (faconvlstm.cli)",
    ]
    [cycle] = cycles(graph)
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {"faconvlstm.pipeline.runs", "faconvlstm.pipeline.training"}
