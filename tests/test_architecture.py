"""The one rule of the house: bot → handlers → care → storage, imports pointing down only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["bot", "handlers", "care", "storage"]


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("layer", LAYERS)
def test_no_layer_imports_a_layer_above_it(layer: str) -> None:
    above = set(LAYERS[: LAYERS.index(layer)])
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_packages(path) & above)
        for path in sorted((ROOT / layer).rglob("*.py"))
        if _imported_packages(path) & above
    }
    assert offenders == {}, f"{layer}/ imports from a layer above it"


def test_care_knows_nothing_of_aiogram_routing() -> None:
    """care/ may use the Bot (delivery) and plain types, never routers, filters or FSM."""
    forbidden = ("aiogram.filters", "aiogram.fsm", "aiogram.dispatcher", "aiogram.utils.keyboard")
    offenders = []
    for path in sorted((ROOT / "care").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(forbidden):
                offenders.append(f"{path.relative_to(ROOT)}: {node.module}")
    assert offenders == []


def test_storage_imports_nothing_of_ours_but_itself() -> None:
    ours = set(LAYERS) - {"storage"}
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "storage").rglob("*.py"))
        if _imported_packages(path) & ours
    ]
    assert offenders == []
