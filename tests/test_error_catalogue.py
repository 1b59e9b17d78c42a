"""docs/errors.md lists at least 25 bad inputs, and every test it names exists."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "docs" / "errors.md"


def catalogue_rows() -> list[list[str]]:
    rows = [line for line in CATALOGUE.read_text().splitlines() if re.match(r"\| \d+ \|", line)]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]


def test_the_catalogue_has_at_least_25_numbered_bad_inputs():
    numbers = [int(row[0]) for row in catalogue_rows()]
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) >= 25


def test_every_test_the_catalogue_names_exists():
    for row in catalogue_rows():
        path, name = row[-1].strip("`").split("::")
        tree = ast.parse((ROOT / path).read_text())
        functions = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert name in functions, f"row {row[0]}: {path} has no {name}"
