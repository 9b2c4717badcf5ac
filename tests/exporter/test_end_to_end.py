"""End to end on loopback: simulated vLLM pods -> real exporter -> real Debian Prometheus."""

from __future__ import annotations

import math

import pytest

from tests.conftest import Stack


def _values(stack: Stack, expr: str) -> dict[str, float]:
    return {r["metric"].get("pod", ""): float(r["value"][1]) for r in stack.prometheus.query(expr)}


def test_prometheus_stores_folded_kv_usage(scraped_stack: Stack) -> None:
    usage = _values(scraped_stack, 'kvscale_vllm_kv_cache_usage_ratio{namespace="demo"}')
    # vllm-a: DP=2 engines at 0.25 and 0.75 with equal block counts -> block-weighted 0.5.
    assert usage == {"vllm-a": pytest.approx(0.5), "vllm-b": pytest.approx(0.4321)}


def test_vllm_format_targets_are_stored_with_colon_names(scraped_stack: Stack) -> None:
    # Targets served as text 0.0.4 keep vLLM's names even though Prometheus asks for OpenMetrics.
    series = scraped_stack.prometheus.wait_for('vllm:num_requests_running{pod="vllm-b"}')
    assert series[0]["metric"]["__name__"] == "vllm:num_requests_running"


@pytest.mark.parametrize("pod", ["vllm-a", "vllm-b"])
def test_windowed_ttft_p95_equals_promql_histogram_quantile(scraped_stack: Stack, pod: str) -> None:
    prom = scraped_stack.prometheus
    exporter = prom.wait_for(f'kvscale_vllm_ttft_seconds{{pod="{pod}",quantile="0.95"}}')
    buckets = f'vllm:time_to_first_token_seconds_bucket{{pod="{pod}"}}'
    promql = prom.wait_for(f"histogram_quantile(0.95, sum by (le) (increase({buckets}[20s])))")
    ours, theirs = float(exporter[0]["value"][1]), float(promql[0]["value"][1])
    assert math.isfinite(ours)
    assert ours == pytest.approx(theirs, abs=1e-9)
    # The window sees only new requests: the lifetime (cumulative) quantile is different.
    lifetime = prom.query(
        f'histogram_quantile(0.95, sum by (le) (vllm:time_to_first_token_seconds_bucket{{pod="{pod}"}}))')
    assert float(lifetime[0]["value"][1]) != pytest.approx(ours, abs=1e-6)


def test_live_targets_are_up_and_the_collector_healthy(scraped_stack: Stack) -> None:
    up = _values(scraped_stack, "kvscale_vllm_up")
    assert up == {"vllm-a": 1.0, "vllm-b": 1.0}
    assert _values(scraped_stack, 'kvscale_exporter_collector_success{collector="vllm"}') == {"": 1.0}
