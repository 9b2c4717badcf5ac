"""Rendering: rule files, the PrometheusRule object against its CRD schema, the committed build."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from alerts import render as render_module
from alerts.model import Alert, Group, Recording
from alerts.render import (
    PROMETHEUS_RULE_FILE,
    RenderError,
    all_alerts,
    build_groups,
    prometheus_rule,
    render_files,
    write_files,
)
from exporter.contract.policy import Policy, from_mapping
from tests.conftest import FIXTURES

# The CRD schemas, copied from the project's shared schema set.
_SCHEMA = FIXTURES / "schemas" / "monitoring.coreos.com_v1_prometheusrule.json"
GROUPS = build_groups(Policy())


def _rule_schema(schema: dict[str, Any]) -> dict[str, Any]:
    rule: dict[str, Any] = schema["properties"]["spec"]["properties"]["groups"]["items"]["properties"]["rules"]["items"]
    return rule


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(_SCHEMA.read_text())
    return loaded


def test_prometheus_rule_validates_against_the_crd_schema(schema: dict[str, Any]) -> None:
    doc = yaml.safe_load(render_files(GROUPS)[PROMETHEUS_RULE_FILE])
    errors = [f"{e.json_path}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
    assert not errors
    # The CRD schema allows unknown keys (the API server prunes them): hold every key to the known set.
    known = set(_rule_schema(schema)["properties"])
    unknown = {key for g in doc["spec"]["groups"] for r in g["rules"] for key in r if key not in known}
    assert not unknown


def test_prometheus_rule_schema_rejects_a_broken_object(schema: dict[str, Any]) -> None:
    doc = prometheus_rule(GROUPS)
    doc["spec"]["groups"][0]["rules"][0].pop("expr")
    assert list(jsonschema.Draft7Validator(schema).iter_errors(doc))


def test_rule_files_hold_one_group_each_and_match_the_object() -> None:
    files = render_files(GROUPS)
    obj = yaml.safe_load(files.pop(PROMETHEUS_RULE_FILE))
    from_files = [yaml.safe_load(text)["groups"] for text in files.values()]
    assert all(len(groups) == 1 for groups in from_files)
    assert sorted((g[0] for g in from_files), key=lambda g: g["name"]) == sorted(
        obj["spec"]["groups"], key=lambda g: g["name"])


def test_every_alert_carries_severity_for_summary_description_runbook() -> None:
    for group in yaml.safe_load(render_files(GROUPS)[PROMETHEUS_RULE_FILE])["spec"]["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}
            assert "for" in rule
            assert set(rule["annotations"]) == {"summary", "description", "runbook_url", "dashboard_url"}
            assert "{{" not in rule["annotations"]["summary"]
            assert "{{" in rule["annotations"]["description"]


def test_multiline_queries_render_as_literal_blocks() -> None:
    text = render_files(GROUPS)["kvscale-hpa-alerts.rules.yml"]
    assert "expr: |-\n" in text
    assert yaml.safe_load(text)["groups"][0]["rules"][0]["expr"].count("\n") == 2


def test_write_files_removes_stale_rule_files_only(tmp_path: Path) -> None:
    (tmp_path / "old-group.rules.yml").write_text("groups: []\n")
    (tmp_path / "README.md").write_text("keep me\n")
    write_files({"a.rules.yml": "groups: []\n"}, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "a.rules.yml"]


def test_write_files_into_a_file_path_is_a_render_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RenderError, match="cannot write rules"):
        write_files({"a.rules.yml": ""}, blocker)


@pytest.mark.parametrize(("rule", "message"), [
    (lambda: Recording("no_colons", "up"), "level:metric:operations"),
    (lambda: Alert("A", "up == 0", 60, "warning", "templated {{ $labels.pod }}", "d", "up"), "summary is static"),
])
def test_model_rejects_bad_rules(rule: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rule()


def test_build_rejects_duplicate_names(monkeypatch: pytest.MonkeyPatch) -> None:
    alert = all_alerts(GROUPS)[0]
    twice = (Group("x", (alert,)), Group("y", (alert,)))
    monkeypatch.setattr(render_module, "recording_groups", lambda config: twice)
    with pytest.raises(ValueError, match="duplicate alert names"):
        build_groups(Policy())


@pytest.mark.parametrize("label", ["cluster", "k8s_cluster"])
def test_every_by_and_on_keeps_the_cluster_label(label: str) -> None:
    groups = build_groups(Policy() if label == "cluster" else from_mapping({"cluster_label": label}))
    clauses = [c for g in groups for r in g.rules for c in re.findall(r"\b(?:by|on) \(([^)]*)\)", r.expr)]
    assert len(clauses) > 30
    assert [c for c in clauses if c and not c.startswith(f"{label}, ") and c != label] == []


def test_severities_come_from_the_policy() -> None:
    changed = from_mapping({"latency_slo_severity": "warning", "model_down_severity": "warning",
                            "adapter_absent_severity": "info"})
    severity = {a.alert: a.severity for a in all_alerts(build_groups(changed))}
    default = {a.alert: a.severity for a in all_alerts(GROUPS)}
    assert default["KvscaleTTFTOverSLO"] == default["KvscaleModelDown"] == "critical"
    assert severity["KvscaleTTFTOverSLO"] == severity["KvscaleInterTokenLatencyOverSLO"] == "warning"
    assert severity["KvscaleModelDown"] == "warning" and severity["KvscaleAdapterAbsent"] == "info"
