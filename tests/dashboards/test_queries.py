"""Every panel query, run against real Prometheus servers that scraped real or synthetic series.

The vLLM, exporter and kube-state-metrics panels run against the shared end-to-end stack
(simulated vLLM pods -> real exporter -> real Prometheus); the GPU panels against a
Prometheus scraping synthetic ``kvscale_gpu_*`` series. Each query must return data.
"""

from __future__ import annotations

from typing import Any

import pytest

from dashboards import build
from dashboards.promql import PanelQuery, panel_queries, substitute
from exporter.catalog import BY_NAME
from exporter.exposition import parse_bytes
from exporter.thresholds import Thresholds
from tests.conftest import PrometheusServer, Stack
from tests.dashboards.conftest import GPU_FIXTURE

# The stack's values for the dashboard variables; ``node`` exists only in the GPU series.
VALUES = {"namespace": "demo", "model": "tiny-llama", "pod": "vllm-a", "node": "gpu-node-1",
          "__rate_interval": "20s", "__range": "10m"}

QUERIES = [q for dash in build.render(Thresholds()).values() for q in panel_queries(dash)]


def _id(query: PanelQuery) -> str:
    return f"{query.dashboard}-{query.panel_id}{query.ref_id}"


def _server(query: PanelQuery, stack: Stack, gpu: PrometheusServer) -> PrometheusServer:
    return gpu if "kvscale_gpu_" in query.expr else stack.prometheus


@pytest.mark.parametrize("query", QUERIES, ids=_id)
def test_query_returns_data(query: PanelQuery, scraped_stack: Stack, gpu_prometheus: PrometheusServer) -> None:
    expr = substitute(query.expr, VALUES)
    # Windowed series need a few collections after the stack is up; wait_for polls, it does not sleep blindly.
    result = _server(query, scraped_stack, gpu_prometheus).wait_for(expr, timeout=45)
    assert result, f"{query.panel}: {expr}"


def test_queries_filter_on_the_variables(scraped_stack: Stack) -> None:
    # A pod that does not exist must empty the per-pod panels: the variables are really applied.
    per_pod = [q for q in QUERIES if q.dashboard == "kvscale-engine" and "kvscale_vllm_" in q.expr]
    assert per_pod
    for query in per_pod:
        expr = substitute(query.expr, {**VALUES, "pod": "no-such-pod"})
        assert scraped_stack.prometheus.query(expr) == [], expr


def test_gpu_fixture_speaks_the_catalog() -> None:
    exposition = parse_bytes(GPU_FIXTURE.read_bytes())
    assert exposition.samples
    for name, samples in exposition.samples.items():
        family = BY_NAME[name]
        for labels, _value in samples:
            assert tuple(sorted(labels)) == tuple(sorted(family.labels)), name


def test_stack_serves_the_kube_state_metrics_fixture(scraped_stack: Stack) -> None:
    result: list[dict[str, Any]] = scraped_stack.prometheus.wait_for(
        'kube_horizontalpodautoscaler_status_condition{condition="ScalingActive", status="false"}')
    assert float(result[0]["value"][1]) == 1
    assert result[0]["metric"]["job"] == "kube-state-metrics"
