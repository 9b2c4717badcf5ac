"""Every panel query, run against the shared end-to-end stack's real Prometheus.

The stack is simulated vLLM pods and fake-NVML GPUs -> the real exporter -> real Prometheus,
plus synthetic kube-state-metrics series. Each query must return data.
"""

from __future__ import annotations

from typing import Any

import pytest

from alerts import platform
from dashboards import build
from dashboards.promql import PanelQuery, panel_queries, substitute
from exporter.contract.policy import Policy
from tests.conftest import Stack

# The stack's values for the dashboard variables; ``node`` exists only in the GPU series.
VALUES = {"cluster": ".*", "namespace": "demo", "model": "tiny-llama", "pod": "vllm-a", "node": Stack.node,
          "__rate_interval": "20s", "__range": "10m"}

QUERIES = [q for dash in build.render(Policy()).values() for q in panel_queries(dash)]


def _id(query: PanelQuery) -> str:
    return f"{query.dashboard}-{query.panel_id}{query.ref_id}"


# The shared stack runs no adapter: its panels are checked against the adapter's real self-metrics in
# tests/alerts/test_faults_e2e.py instead.
ADAPTER_ONLY = (platform.ADAPTER_FRESHNESS, platform.ADAPTER_REQUESTS)
STACK_QUERIES = [q for q in QUERIES if not any(name in q.expr for name in ADAPTER_ONLY)]


@pytest.mark.parametrize("query", STACK_QUERIES, ids=_id)
def test_query_returns_data(query: PanelQuery, scraped_stack: Stack) -> None:
    expr = substitute(query.expr, VALUES)
    # Windowed series need a few collections after the stack is up; wait_for polls, it does not sleep blindly.
    result = scraped_stack.prometheus.wait_for(expr, timeout=45)
    assert result, f"{query.panel}: {expr}"


def test_queries_filter_on_the_variables(scraped_stack: Stack) -> None:
    # A pod that does not exist must empty the per-pod panels: the variables are really applied.
    per_pod = [q for q in QUERIES if q.dashboard == "kvscale-engine" and "kvscale_vllm_" in q.expr]
    assert per_pod
    for query in per_pod:
        expr = substitute(query.expr, {**VALUES, "pod": "no-such-pod"})
        assert scraped_stack.prometheus.query(expr) == [], expr


def test_stack_serves_the_kube_state_metrics_fixture(scraped_stack: Stack) -> None:
    result: list[dict[str, Any]] = scraped_stack.prometheus.wait_for(
        'kube_horizontalpodautoscaler_status_condition{condition="ScalingActive", status="false"}')
    assert float(result[0]["value"][1]) == 1
    assert result[0]["metric"]["job"] == "kube-state-metrics"
