"""One policy value in the Helm values reaches the alert, the dashboard line and the autoscaler, and
nothing else; the chart's rules and dashboards are exactly what the alerts and dashboards packages
generate for the same policy."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards import build
from deploy.chart_sync import rule_spec
from exporter.contract.policy import Policy, from_mapping
from tests.conftest import tool_path
from tests.deploy.chart import COMBINATIONS, VLLM, Rendered, render

Leaves = dict[tuple[Any, ...], Any]


def _leaves(tree: Any, path: tuple[Any, ...] = ()) -> Leaves:
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in _leaves(value, (*path, key)).items()}
    if isinstance(tree, list):
        return {k: v for i, value in enumerate(tree) for k, v in _leaves(value, (*path, i)).items()}
    return {path: tree}


def _objects(rendered: Rendered) -> dict[tuple[str, str], Any]:
    """Objects by (kind, name); dashboards parsed from their ConfigMap; random TLS material left out."""
    out: dict[tuple[str, str], Any] = {}
    for original in rendered.objects:
        obj = json.loads(json.dumps(original))
        if obj["kind"] == "Secret":
            obj["data"] = "generated at install"
        if obj["kind"] == "APIService":
            obj["spec"].pop("caBundle", None)
        if obj["kind"] == "ConfigMap" and "dashboard" in obj["metadata"]["name"]:
            obj["data"] = {k: json.loads(v) for k, v in obj["data"].items()}
        out[(obj["kind"], obj["metadata"]["name"])] = obj
    return out


def _changes(before: Rendered, after: Rendered) -> dict[tuple[str, str], Leaves]:
    a, b = _objects(before), _objects(after)
    assert a.keys() == b.keys()
    changed = {}
    for key in a:
        old, new = _leaves(a[key]), _leaves(b[key])
        assert old.keys() == new.keys(), key
        diff = {path: new[path] for path in old if old[path] != new[path]}
        if diff:
            changed[key] = diff
    return changed


def test_one_changed_threshold_changes_alert_dashboard_and_hpa_and_nothing_else() -> None:
    values: dict[str, Any] = {"autoscaling": {"mode": "hpa", "target": VLLM}}
    before = render(values)
    after = render({**values, "policy": {"queue_target": 8}})
    changes = _changes(before, after)

    assert set(changes.pop(("ConfigMap", "kvscale-policy"))) == {("data", "policy.yaml")}
    for workload in (("DaemonSet", "kvscale-exporter"), ("Deployment", "kvscale-adapter")):
        # The pods restart to read the new policy file.
        assert set(changes.pop(workload)) == {("spec", "template", "metadata", "annotations", "checksum/policy")}

    hpa = changes.pop(("HorizontalPodAutoscaler", VLLM["name"]))
    assert hpa == {("spec", "metrics", 0, "pods", "target", "averageValue"): "8"}

    rule = changes.pop(("PrometheusRule", "kvscale"))
    spec = after.one("PrometheusRule")["spec"]
    touched = {spec["groups"][p[2]]["rules"][p[4]].get("alert") for p in rule}
    assert touched == {"KvscaleQueueBacklogGrowing", "KvscaleQueueFarAboveTarget"}  # its line is a multiple of it
    assert any(p[-1] == "expr" and "> 8\n" in v for p, v in rule.items())

    dashboards = {name: diff for (kind, name), diff in list(changes.items()) if "dashboard" in name}
    for name in dashboards:
        changes.pop(("ConfigMap", name))
    steps = [(name, p) for name, diff in dashboards.items() for p, v in diff.items()
             if p[-4:-1] == ("thresholds", "steps", p[-2]) and v == 8.0]
    assert {name.rsplit("-", 1)[1] for name, _ in steps} >= {"fleet", "engine", "autoscaling"}
    # Besides the threshold steps only texts that quote the target moved.
    others = [v for diff in dashboards.values() for p, v in diff.items() if p[-1] != "value"]
    assert others and all(isinstance(v, str) and "8" in v for v in others)

    assert changes == {}


def test_changed_threshold_reaches_the_scaledobject() -> None:
    values: dict[str, Any] = {"autoscaling": {"mode": "keda", "target": VLLM}}
    before = render(values).one("ScaledObject")
    after = render({**values, "policy": {"ttft_p95_slo_seconds": 1.2}}).one("ScaledObject")
    diff = {p: v for p, v in _leaves(after).items() if _leaves(before)[p] != v}
    assert diff == {("spec", "triggers", 1, "metadata", "threshold"): "1.2"}


def _python_build(policy_values: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    policy = from_mapping(policy_values)
    return build.files(policy), rule_spec(policy)


def _every_number() -> dict[str, Any]:
    """Every numeric key changed; floats as whole numbers (JSON writes 7.0, PromQL 7), seconds as hours."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Policy):
        bounds = f.metadata["bounds"]
        if f.type in ("int", int):
            values[f.name] = 7200
        elif f.type in ("float", float):
            ratio = bounds.get("maximum", bounds.get("exclusiveMaximum", 2)) <= 1
            values[f.name] = 0.41 if ratio else 7
    return values


POLICIES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "custom": COMBINATIONS["custom-policy"]["policy"],
    "every-number": _every_number(),
    "strings": {"runbook_url_base": "https://wiki.example/runbooks?page=kvscale&x=<y>",
                "exporter_selector": 'job="exp", cluster="a"', "vllm_selector": 'namespace=~"llm.*"',
                "kube_state_metrics_selector": "", "hpa_namespace_selector": 'namespace!="kube-system"'},
}


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_chart_content_is_what_the_packages_generate(name: str) -> None:
    policy_values = POLICIES[name]
    rendered = render({"policy": policy_values, "adapter": {"serviceMonitor": {"enabled": True}}})
    dashboards, rules = _python_build(policy_values)
    in_chart = {k.removeprefix("kvscale-"): v for c in rendered.of_kind("ConfigMap")
                if "dashboard" in c["metadata"]["name"] for k, v in c["data"].items()}
    assert in_chart.keys() == dashboards.keys()
    for file_name, text in dashboards.items():
        assert in_chart[file_name] == text, f"{file_name} differs from the dashboards package's build"
    assert rendered.one("PrometheusRule")["spec"] == rules


def test_default_dashboards_are_the_committed_build() -> None:
    in_chart = {k.removeprefix("kvscale-"): v for c in render().of_kind("ConfigMap")
                if "dashboard" in c["metadata"]["name"] for k, v in c["data"].items()}
    committed = {p.name: p.read_text(encoding="utf-8") for p in build.DEFAULT_DIR.glob("*.json")}
    assert in_chart == committed


def test_adapter_absent_alert_follows_its_scrape_and_disabled_alerts_go() -> None:
    def alerts(values: dict[str, Any]) -> set[str]:
        spec = render(values).one("PrometheusRule")["spec"]
        return {r["alert"] for g in spec["groups"] for r in g["rules"] if "alert" in r}
    default = alerts({})
    assert "KvscaleAdapterAbsent" not in default  # nothing scrapes the adapter by default
    assert "KvscaleAdapterAbsent" in alerts({"adapter": {"serviceMonitor": {"enabled": True}}})
    assert alerts({"prometheusRule": {"disabled": {"KvscaleGpuLost": True}}}) == default - {"KvscaleGpuLost"}


@pytest.mark.parametrize("combo", ["defaults", "custom-policy"])
def test_rules_pass_promtool(combo: str, tmp_path: Path) -> None:
    spec = render(COMBINATIONS[combo]).one("PrometheusRule")["spec"]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": spec["groups"]}), encoding="utf-8")
    result = subprocess.run([tool_path("promtool"), "check", "rules", str(path)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
