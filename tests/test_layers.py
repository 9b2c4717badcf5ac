"""The import-layer contracts in pyproject.toml cover every module of the exporter."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def contracts() -> dict[str, dict[str, Any]]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    return {c["name"]: c for c in config["contracts"]}


def exporter_children() -> set[str]:
    root = REPO / "exporter"
    modules = {p.stem for p in root.glob("*.py") if p.stem not in ("__init__", "__main__")}
    packages = {p.parent.name for p in root.glob("*/__init__.py")}
    return modules | packages


def test_only_the_contract_is_left_open_to_other_packages() -> None:
    (forbidden,) = [c for c in contracts().values() if c["type"] == "forbidden"]
    assert {m.removeprefix("exporter.") for m in forbidden["forbidden_modules"]} == exporter_children() - {"contract"}
    assert set(forbidden["source_modules"]) == {"adapter", "alerts", "dashboards"}


def test_the_exporter_layers_are_exhaustive_and_the_contract_is_the_bottom() -> None:
    (inner,) = [c for c in contracts().values() if c.get("containers") == ["exporter"]]
    assert inner["exhaustive"] is True
    assert inner["layers"][-1] == "contract"
    named = {m.strip() for layer in inner["layers"] for m in layer.split("|")}
    assert named == exporter_children()
