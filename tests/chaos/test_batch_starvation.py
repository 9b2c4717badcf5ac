"""Batch starvation: long prompts hold the scheduler's token budget with their prefill chunks, and
short requests queued behind them wait. The exporter's TTFT p95 and queue time show it, saturation
follows, and the TTFT alert fires in a real Prometheus (its `for:` shortened through the policy file).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from exporter.contract.policy import Policy
from tests.chaos.conftest import build_rules, pod_value, prometheus_config, scrape
from tests.chaos.workload import Replica
from tests.conftest import Processes, start_exporter

pytestmark = pytest.mark.chaos

SLO = Policy().ttft_p95_slo_seconds
WINDOW = 10  # seconds: short, so the starved window replaces the calm one within the test


async def _latency(exporter: str, pod: str) -> tuple[float | None, float | None]:
    """(TTFT p95, queue time p95) the exporter shows for the pod."""
    m = await asyncio.to_thread(scrape, exporter)
    return (pod_value(m, "kvscale_vllm_ttft_seconds", pod, quantile="0.95"),
            pod_value(m, "kvscale_vllm_queue_time_seconds", pod, quantile="0.95"))


async def _until(exporter: str, pod: str, check: Any, timeout: float) -> tuple[float | None, float | None]:
    deadline = time.monotonic() + timeout
    shown = await _latency(exporter, pod)
    while not check(*shown) and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        shown = await _latency(exporter, pod)
    return shown


async def test_long_prompts_starve_short_requests_and_the_ttft_alert_fires(
        replica_factory: Any, procs: Processes, prometheus_factory: Any, tmp_path: Path) -> None:
    replica: Replica = await replica_factory()  # Llama-3.1-8B on an H100: 8,192 batched tokens per step
    pod = replica.pod
    rules = build_rules(tmp_path / "alerts", {"ttft_alert_for_seconds": 1})
    exporter = await asyncio.to_thread(start_exporter, procs, "exporter", {f"demo/{pod}": replica.url},
                                       "--window", str(WINDOW), "--policy", str(tmp_path / "alerts" / "policy.yaml"))
    prometheus = await asyncio.to_thread(prometheus_factory, prometheus_config(exporter), rules)

    # Calm: short chat requests alone are served in milliseconds.
    short = replica.load(prompt_tokens=64, max_tokens=16, clients=4, pause=0.05)
    ttft, queue = await _until(exporter, pod, lambda t, q: t is not None and q is not None, 15)
    assert ttft is not None and queue is not None
    # (vLLM's first queue-time bucket ends at 0.3 s: PromQL-style interpolation puts short waits below it.)
    assert ttft < SLO and queue <= 0.3
    calm = statistics.median(short.latencies())
    assert calm < SLO

    # Three clients send 64k-token prompts back to back: each takes ~8 steps of a full token budget, and the
    # short requests that arrive meanwhile wait in the queue (vLLM schedules running prefills first).
    replica.load(prompt_tokens=64_000, max_tokens=4, clients=3)
    starved_from = time.monotonic() + 1.0  # once the long prefills hold the token budget
    ttft, queue = await _until(exporter, pod, lambda t, q: t is not None and t > SLO and q is not None and q > SLO,
                               25)
    assert ttft is not None and ttft > SLO, ttft
    assert queue is not None and queue > SLO, queue  # the time went into waiting, not into computing
    m = await asyncio.to_thread(scrape, exporter)
    saturation = pod_value(m, "kvscale_vllm_saturation_ratio", pod)
    assert saturation is not None and saturation > 1.0
    assert (pod_value(m, "kvscale_vllm_kv_cache_usage_ratio", pod) or 0.0) < 0.5  # not a KV problem
    deadline = time.monotonic() + 15
    while len(short.latencies(starved_from)) < 8 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    starved = statistics.median(short.latencies(starved_from))
    assert starved > 5 * calm and starved > SLO / 2, (calm, starved)  # the short ones themselves were blocked

    firing = await asyncio.to_thread(
        prometheus.wait_for, 'ALERTS{alertname="KvscaleTTFTOverSLO",alertstate="firing",quantile="0.95"}', 30.0)
    assert firing[0]["metric"]["pod"] == pod
    assert not short.errors, short.errors[:3]
