"""Grafana variable substitution, legends, and every panel query parsing as PromQL offline."""

from __future__ import annotations

from typing import Any

import promql_parser
import pytest

from alerts import platform
from dashboards import build
from dashboards.promql import UnknownVariableError, legend, panel_queries, substitute
from exporter.contract.catalog import BY_NAME
from exporter.contract.policy import Policy

VALUES = {"cluster": ".*", "namespace": "demo", "model": "tiny-llama", "pod": "vllm-a", "node": "gpu-node-1"}


@pytest.mark.parametrize(("expr", "expected"), [
    ('up{namespace=~"$namespace"}', 'up{namespace=~"demo"}'),
    ('up{pod=~"${pod}"}', 'up{pod=~"vllm-a"}'),
    ('up{pod=~"${pod:regex}"}', 'up{pod=~"vllm-a"}'),
    ('up{pod=~"[[pod]]"}', 'up{pod=~"vllm-a"}'),
    ("rate(x[$__rate_interval])", "rate(x[1m])"),
    ("increase(x[$__range]) + rate(x[$__interval])", "increase(x[1h]) + rate(x[15s])"),
    ('x{a="$namespace", b="$namespaces"}', None),  # a longer name is a different variable
    ("vllm:x_bucket", "vllm:x_bucket"),
])
def test_substitute(expr: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(UnknownVariableError, match="namespaces"):
            substitute(expr, VALUES)
    else:
        assert substitute(expr, VALUES) == expected


def test_substitute_lets_callers_override_builtin_intervals() -> None:
    assert substitute("rate(x[$__rate_interval])", {"__rate_interval": "5m"}) == "rate(x[5m])"


@pytest.mark.parametrize(("fmt", "labels", "expected"), [
    ("{{pod}}", {"pod": "vllm-a"}, "vllm-a"),
    ("{{ pod }} q{{quantile}}", {"pod": "vllm-a", "quantile": "0.95"}, "vllm-a q0.95"),
    ("{{missing}}", {"pod": "vllm-a"}, "fallback"),
    ("", {"pod": "vllm-a"}, "fallback"),
    ("p95 fleet", {}, "p95 fleet"),
])
def test_legend(fmt: str, labels: dict[str, str], expected: str) -> None:
    assert legend(fmt, labels, "fallback") == expected


def test_panel_queries_walks_rows_and_targets() -> None:
    dash = {"uid": "u", "panels": [
        {"id": 1, "type": "row", "title": "r", "panels": [
            {"id": 2, "type": "timeseries", "title": "t", "targets": [{"refId": "A", "expr": "up"}]}]},
        {"id": 3, "type": "stat", "title": "s", "targets": [
            {"refId": "A", "expr": "a", "instant": True}, {"refId": "B", "expr": "b", "legendFormat": "{{pod}}"}]},
    ]}
    found = panel_queries(dash)
    assert [(q.panel_id, q.ref_id, q.expr, q.instant) for q in found] == [
        (2, "A", "up", False), (3, "A", "a", True), (3, "B", "b", False)]
    assert found[2].legend == "{{pod}}"


def _all_queries() -> list[Any]:
    return [q for dash in build.render(Policy()).values() for q in panel_queries(dash)]


def _selectors(expr: str) -> list[str]:
    names: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.append(str(node.name))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


@pytest.mark.parametrize("query", _all_queries(), ids=lambda q: f"{q.dashboard}-{q.panel_id}{q.ref_id}")
def test_every_query_parses_and_reads_known_metrics(query: Any) -> None:
    names = _selectors(substitute(query.expr, VALUES))
    assert names
    for name in names:
        # kvscale_* must be catalog families or the adapter's self-metrics; others are vLLM's own or
        # kube-state-metrics series.
        known = name in BY_NAME or name in (platform.ADAPTER_FRESHNESS, platform.ADAPTER_REQUESTS)
        assert known or name.startswith(("vllm:", "kube_")), name
