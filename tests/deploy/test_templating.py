"""The sentinel templating: Python generators become Helm templates whose output, for any policy,
is what the generator gives for that policy; a value used in a form it cannot template is refused."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from alerts.promql import duration, kvscale, matchers, number
from deploy.templating import TemplatingError, checked_template, optional_strings
from exporter.contract.policy import Policy, from_mapping
from tests.deploy.chart import CHART

TOY_CHART = """apiVersion: v2
name: toy
version: 0.1.0
"""
TOY_TEMPLATE = """apiVersion: v1
kind: ConfigMap
metadata: {name: toy}
data:
  out: {{ tpl (.Files.Get "files/t.json") . | toJson }}
"""


def _helm_output(tmp_path: Path, template: str, policy: dict[str, Any]) -> str:
    chart = tmp_path / "toy"
    (chart / "templates").mkdir(parents=True, exist_ok=True)
    (chart / "files").mkdir(exist_ok=True)
    (chart / "Chart.yaml").write_text(TOY_CHART)
    shutil.copy(CHART / "templates" / "_format.tpl", chart / "templates" / "_format.tpl")
    (chart / "templates" / "cm.yaml").write_text(TOY_TEMPLATE)
    (chart / "files" / "t.json").write_text(template)
    with helm.Chart.load(str(chart)) as loaded:
        files = loaded.render({"policy": {**Policy().to_dict(), **policy}}, name="t", namespace="t")
    text = files["toy/templates/cm.yaml"]
    out: str = yaml.safe_load(text)["data"]["out"]
    return out


def _rules_like(policy: Policy) -> dict[str, Any]:
    """A generator in the alerts package's style: every formatter, optional selectors, Prometheus templates."""
    sel = kvscale("kvscale_vllm_requests_waiting", policy.exporter_selector, policy.hpa_namespace_selector)
    return {
        "expr": f"{sel} > {number(policy.queue_target)}",
        "for": duration(policy.kv_cache_usage_alert_for_seconds),
        "ratio": f"line {policy.kv_cache_usage_alert * 100:g}% (target {policy.kv_target:.0%}, "
                 f"g {policy.ttft_p95_slo_seconds:g})",
        "legend": "{{pod}} waits {{ $value }}",
        "ksm": f"kube_hpa_info{{{matchers(policy.kube_state_metrics_selector)}}}",
        "steps": [{"value": policy.kv_target}, {"value": policy.queue_target}, {"value": policy.xid_window_seconds}],
        "url": f"{policy.runbook_url_base}#alert",
    }


POLICIES = [
    {},
    {"queue_target": 7, "kv_target": 0.6, "kv_cache_usage_alert": 0.07, "ttft_p95_slo_seconds": 1234567.0},
    {"kv_cache_usage_alert_for_seconds": 90, "xid_window_seconds": 86400, "hpa_namespace_selector": 'namespace="a"'},
    {"kube_state_metrics_selector": "", "exporter_selector": 'job="x", c=~"a|b"', "queue_target": 0.001},
    {"runbook_url_base": 'https://w.example/a?b=1&c="<d>"\\e', "kv_target": 1.0, "queue_target": 2.5e-05},
]


@pytest.mark.parametrize("policy", POLICIES, ids=range(len(POLICIES)))
def test_template_renders_what_the_generator_gives(policy: dict[str, Any], tmp_path: Path) -> None:
    template = checked_template(_rules_like, optional_strings([_rules_like]))
    expected = json.dumps(_rules_like(from_mapping(policy)), indent=2, ensure_ascii=False) + "\n"
    assert _helm_output(tmp_path, template, policy) == expected


def test_optional_selectors_are_found_by_trying_them_empty() -> None:
    optional = optional_strings([_rules_like])
    assert {"hpa_namespace_selector", "kube_state_metrics_selector"} <= optional
    assert "runbook_url_base" not in optional  # the policy itself refuses it empty


def test_a_value_used_in_arithmetic_is_refused() -> None:
    def doubled(policy: Policy) -> dict[str, Any]:
        return {"expr": f"x > {number(policy.queue_target * 2)}"}
    with pytest.raises(TemplatingError, match="cannot template"):
        checked_template(doubled, frozenset())


def test_a_structure_that_depends_on_a_value_is_refused() -> None:
    def shaped(policy: Policy) -> dict[str, Any]:
        return {"rules": [policy.vllm_selector] if policy.vllm_selector else []}
    with pytest.raises(TemplatingError, match="structure"):
        checked_template(shaped, frozenset({"vllm_selector"}))


FORMAT_CASES = [0.0, 0.001, 0.07, 0.1, 0.285, 0.75, 0.8, 0.85, 1.0, 5.0, 7.5, 12.3456789, 300.0, 1e-05, 1234567.0]


def test_number_helpers_match_pythons_formatters(tmp_path: Path) -> None:
    lines = []
    for helper in ("num", "g", "pctg", "jsonfloat", "pct0"):
        lines.append(" ".join(f'{{{{ include "kvscale.fmt.{helper}" {v!r} }}}}' for v in FORMAT_CASES))
    lines.append(" ".join(f'{{{{ include "kvscale.quantity" {v!r} }}}}' for v in FORMAT_CASES))
    lines.append(" ".join(f'{{{{ include "kvscale.fmt.int" {s} }}}}' for s in (1, 300, 86400)))
    seconds = [1, 59, 60, 90, 300, 3600, 5400, 86400, 90000, 172800]
    lines.append(" ".join(f'{{{{ include "kvscale.fmt.duration" {s} }}}}' for s in seconds))
    out = _helm_output(tmp_path, "\n".join(lines), {}).splitlines()

    def quantity(v: float) -> str:
        milli = math.ceil(v * 1000)
        return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"

    assert out[0].split() == [number(v) for v in FORMAT_CASES]
    assert out[1].split() == [f"{v:g}" for v in FORMAT_CASES]
    assert out[2].split() == [f"{v * 100:g}%" for v in FORMAT_CASES]
    assert out[3].split() == [json.dumps(v) for v in FORMAT_CASES]
    assert out[4].split() == [f"{v:.0%}" for v in FORMAT_CASES]
    assert out[5].split() == [quantity(v) for v in FORMAT_CASES]
    assert out[6].split() == ["1", "300", "86400"]
    assert out[7].split() == [duration(s) for s in seconds]
