"""docs/reliability.md stays true: every test it cites exists, every chaos test is cited, and its
limits tables carry the defaults the code has."""

from __future__ import annotations

import dataclasses
import importlib
import re
from typing import Any

import pytest

from adapter.settings import AdapterSettings
from exporter.contract.policy import Policy
from exporter.settings import Settings
from tests.conftest import REPO

REPORT = REPO / "docs" / "reliability.md"
CITED = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
LIMIT_ROW = re.compile(r"^\| (exporter|adapter|policy) \| `([^`]+)` \| `([^`]+)` \|", re.M)
DEFAULTS: dict[str, type[Any]] = {"exporter": Settings, "adapter": AdapterSettings, "policy": Policy}


def _cited() -> set[tuple[str, str]]:
    return set(CITED.findall(REPORT.read_text(encoding="utf-8")))


def _defines(path: str, name: str) -> bool:
    return re.search(rf"^(async )?def {name}\(", (REPO / path).read_text(encoding="utf-8"), re.M) is not None


def test_every_cited_test_exists() -> None:
    cited = _cited()
    assert len(cited) > 40
    missing = sorted(f"{path}::{name}" for path, name in cited
                     if not (REPO / path).exists() or not _defines(path, name))
    assert not missing, f"docs/reliability.md cites tests that do not exist: {missing}"


def test_every_chaos_test_is_in_the_report() -> None:
    cited = _cited()
    chaos = {(str(p.relative_to(REPO)), name) for p in (REPO / "tests" / "chaos").glob("test_*.py")
             if p.name != "test_report.py"
             for name in re.findall(r"^(?:async )?def (test_\w+)\(", p.read_text(encoding="utf-8"), re.M)}
    assert chaos and chaos <= cited, f"add a row to docs/reliability.md for: {sorted(chaos - cited)}"


def _default(command: str, setting: str) -> Any:
    if "." in setting:  # a constant fixed in the code: module.NAME
        module, _, name = setting.rpartition(".")
        return getattr(importlib.import_module(module), name)
    fields = {f.name: f for f in dataclasses.fields(DEFAULTS[command])}
    name = setting.removeprefix("--").replace("-", "_")
    assert name in fields, f"{command} has no setting {setting}"
    return fields[name].default


def test_limit_defaults_match_the_code() -> None:
    rows = LIMIT_ROW.findall(REPORT.read_text(encoding="utf-8"))
    assert len(rows) > 20
    wrong = [(command, setting, shown, repr(_default(command, setting))) for command, setting, shown in rows
             if shown != repr(_default(command, setting))]
    assert not wrong, f"docs/reliability.md shows defaults the code does not have: {wrong}"


@pytest.mark.parametrize("row", ["| exporter | `--max-body-bytes` | `1` |", "| policy | `absent_for_seconds` | `3` |"])
def test_a_wrong_default_is_found(row: str) -> None:
    command, setting, shown = LIMIT_ROW.findall(row)[0]
    assert shown != repr(_default(command, setting))
