"""The catalog is the only list of families, and every family declares what it means to the other parts."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from exporter.contract import catalog
from exporter.contract.catalog import Family

REPO = Path(__file__).resolve().parents[3]
PACKAGES = ("exporter", "adapter", "alerts", "dashboards", "simulator")
CATALOG = REPO / "exporter" / "contract" / "catalog.py"
NAMES = frozenset(catalog.BY_NAME)


def _family_literals(node: ast.AST) -> list[str]:
    elements: list[ast.expr | None] = []
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        elements = list(node.elts)
    elif isinstance(node, ast.Dict):
        elements = list(node.keys)
    return [e.value for e in elements if isinstance(e, ast.Constant) and e.value in NAMES]


def lists_of_families(path: Path, root: Path = REPO) -> list[str]:
    """'file:line' of each tuple, list, set or dict literal naming two or more catalog families."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [f"{path.relative_to(root)}:{node.lineno}" for node in ast.walk(tree)
            if isinstance(node, ast.expr) and len(_family_literals(node)) >= 2]


def test_no_package_keeps_its_own_list_of_families() -> None:
    found = [hit for package in PACKAGES for path in sorted((REPO / package).rglob("*.py"))
             if path != CATALOG for hit in lists_of_families(path)]
    assert found == []


def test_the_scan_finds_a_list(tmp_path: Path) -> None:
    sample = tmp_path / "probe.py"
    sample.write_text('X = 1\nSUMMED = {"kvscale_vllm_requests_waiting": 1, "kvscale_vllm_requests_running": 2}\n')
    assert lists_of_families(sample, tmp_path) == ["probe.py:2"]


def test_a_family_without_its_declarations_cannot_be_made() -> None:
    declared = {f.name for f in dataclasses.fields(Family)} - {"name", "type", "unit", "help", "labels", "subsystem"}
    assert declared == {"aggregation", "windowed", "autoscaling", "source"}
    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(Family))
    with pytest.raises(TypeError):
        Family("kvscale_vllm_x", "gauge", "", "x", catalog.VLLM_LABELS, "vllm")  # type: ignore[call-arg]


BASE: dict[str, Any] = {"name": "kvscale_vllm_x", "type": "gauge", "unit": "", "help": "x",
                        "labels": catalog.VLLM_LABELS, "subsystem": "vllm", "aggregation": "sum",
                        "windowed": False, "autoscaling": True, "source": ("waiting",)}


@pytest.mark.parametrize(("change", "message"), [
    ({"aggregation": None}, "must declare how it aggregates"),
    ({"labels": (*catalog.VLLM_LABELS, "quantile"), "aggregation": "max"}, "a quantile family is windowed"),
    ({"labels": (*catalog.VLLM_LABELS, "quantile"), "windowed": True}, "a quantile family is windowed"),
    ({"source": ("waiting", "num_requests_waiting")}, "source names no vLLM series"),
])
def test_bad_declarations_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Family(**{**BASE, **change})


def test_good_declaration_is_accepted() -> None:
    assert Family(**BASE).autoscaling


@pytest.mark.parametrize("fam", catalog.FAMILIES, ids=lambda f: f.name)
def test_every_vllm_family_names_its_source(fam: Family) -> None:
    if fam.subsystem == "vllm" and fam.name != "kvscale_vllm_up":
        assert fam.source
    if fam.subsystem == "gpu":
        assert all(s.startswith(("nvml", "podresources")) for s in fam.source) and fam.source
