"""KV exhaustion: a simulated replica with a small KV cache driven full until it preempts.

The real exporter shows it within one collection, the KV alert fires (promtool on the shipped rules
with the exporter's own values, and a real Prometheus with the alert's `for:` shortened through the
policy file), and the HPA model, reading the real adapter over TLS, scales out.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from exporter.contract.exposition import parse_bytes
from exporter.contract.policy import Policy
from simulator.autoscaling import HPA, Decision, HPASpec, MetricTarget, PodState
from simulator.autoscaling.adapter_source import AdapterClient
from simulator.demo_stack import PKI
from tests.chaos.adapters import SCALE_TARGET, adapter_process, wait_ready, write_pods
from tests.chaos.conftest import build_rules, pod_value, prometheus_config, scrape
from tests.chaos.workload import Load, Replica, small_kv_profile
from tests.conftest import REPO, Processes, start_exporter

pytestmark = pytest.mark.chaos

INTERVAL, SCRAPE_TIMEOUT = 1.0, 0.5  # start_exporter's --interval and --scrape-timeout
FULL = 0.9
POLICY = Policy()
# The alert's `for:` shortened to one second through the policy file: the same file the exporter reads.
SHORT_FOR = {"kv_cache_usage_alert_for_seconds": 1, "preemptions_alert_for_seconds": 1}
HPA_METRICS = [MetricTarget("Pods", "kvscale_vllm_kv_cache_usage_ratio", "AverageValue", POLICY.kv_target),
               MetricTarget("Pods", "kvscale_vllm_saturation_ratio", "AverageValue", 1.0)]


async def _usage(session: aiohttp.ClientSession, url: str) -> tuple[float, float]:
    """(KV usage, preemptions so far) on the replica's own /metrics."""
    async with session.get(url + "/metrics") as resp:
        samples = parse_bytes(await resp.read()).samples
    usage = max(v for _, v in samples["vllm:kv_cache_usage_perc"])
    return usage, sum(v for _, v in samples["vllm:num_preemptions_total"])


def _promtool_case(values: list[float], labels: dict[str, str]) -> dict[str, Any]:
    """The exporter's observed KV usage, one sample a minute, against the shipped (default-policy) rules."""
    series = "kvscale_vllm_kv_cache_usage_ratio{" + ",".join(
        f'{k}="{v}"' for k, v in sorted({**labels, "job": "kvscale-exporter"}.items())) + "}"
    minutes = len(values) - 1
    alert_labels = {**labels, "job": "kvscale-exporter", "alertname": "KvscaleKVCacheNearlyFull",
                    "alertstate": "firing", "severity": "warning"}
    return {"interval": "1m", "input_series": [{"series": series, "values": " ".join(repr(v) for v in values)}],
            "promql_expr_test": [
                {"expr": 'ALERTS{alertname="KvscaleKVCacheNearlyFull"}', "eval_time": f"{minutes}m",
                 "exp_samples": [{"labels": "ALERTS{" + ",".join(f'{k}="{v}"' for k, v in
                                                                 sorted(alert_labels.items())) + "}",
                                  "value": 1}]},
                {"expr": 'ALERTS{alertname="KvscaleKVCacheNearlyFull",alertstate="firing"}',
                 "eval_time": f"{POLICY.kv_cache_usage_alert_for_seconds // 60 - 1}m", "exp_samples": []}]}


@dataclass
class KvStack:
    """A small-KV replica, the exporter and Prometheus on it, the adapter over the exporter, an HPA."""

    replica: Replica
    exporter: str
    prometheus: Any
    client: AdapterClient
    observed: list[float] = field(default_factory=list)

    @property
    def pod(self) -> str:
        return self.replica.pod

    async def pressure(self) -> tuple[float | None, ...]:
        """(KV usage, preemptions/s, saturation) the exporter shows; KV usage also kept in ``observed``."""
        m = await asyncio.to_thread(scrape, self.exporter)
        values = tuple(pod_value(m, f, self.pod) for f in ("kvscale_vllm_kv_cache_usage_ratio",
                                                           "kvscale_vllm_preemptions_per_second",
                                                           "kvscale_vllm_saturation_ratio"))
        if values[0] is not None:
            self.observed.append(values[0])
        return values


@pytest.fixture
async def kv_stack(replica_factory: Any, procs: Processes, pki: PKI, prometheus_factory: Any,
                   tmp_path: Path) -> KvStack:
    replica = await replica_factory(small_kv_profile(512))  # 512 blocks x 16 = 8,192 tokens of KV cache
    rules = build_rules(tmp_path / "alerts", SHORT_FOR)
    policy_file = tmp_path / "alerts" / "policy.yaml"
    exporter = await asyncio.to_thread(start_exporter, procs, "exporter", {f"demo/{replica.pod}": replica.url},
                                       "--policy", str(policy_file))
    prometheus = await asyncio.to_thread(prometheus_factory, prometheus_config(exporter), rules)
    adapter = adapter_process(procs, pki, "adapter", exporter_urls=[exporter],
                              pods_file=write_pods(tmp_path, [replica.pod]))
    await asyncio.to_thread(wait_ready, pki, adapter.url)
    client = AdapterClient(adapter.url, session=replica.session, ssl_context=pki.front_proxy_context(),
                           target=SCALE_TARGET)
    return KvStack(replica, exporter, prometheus, client)


async def _fill(stack: KvStack) -> Load:
    """Load the replica until its cache is full; the exporter must show it within one collection."""
    # 96 clients x (32 prompt + 120-240 generated tokens) need up to 1,632 blocks: 3x the cache. Many small
    # requests of mixed lengths keep it full (one preemption frees little), as a chat workload does.
    load = stack.replica.load(prompt_tokens=32, max_tokens=240, clients=96, vary=True)
    engine_full = exporter_full = None
    deadline = time.monotonic() + 30
    while exporter_full is None and time.monotonic() < deadline:
        usage, _ = await _usage(stack.replica.session, stack.replica.url)
        if engine_full is None and usage >= FULL:
            engine_full = time.monotonic()
        shown = (await stack.pressure())[0]
        if engine_full is not None and shown is not None and shown >= FULL:
            exporter_full = time.monotonic()
        await asyncio.sleep(0.05)
    assert engine_full is not None and exporter_full is not None, "the KV cache never filled"
    # Within one collection: the next cycle (interval) plus that cycle's scrape, plus scheduling slack.
    assert exporter_full - engine_full <= INTERVAL + SCRAPE_TIMEOUT + 0.5
    return load


async def _hpa_decision(stack: KvStack, hpa: HPA, syncs: int) -> Decision:
    """The HPA model's decision at its first sync that scales (or the last of ``syncs``), over the adapter."""
    decision = None
    for sync in range(syncs):
        decision = hpa.reconcile(float(sync), 1, [PodState(stack.pod)], await stack.client.fetch(HPA_METRICS))
        if decision.desired > 1:
            break
        await asyncio.sleep(1.0)
    assert decision is not None
    return decision


async def test_full_kv_cache_is_seen_alerted_and_scaled_out(kv_stack: KvStack, promtool: str,
                                                            tmp_path: Path) -> None:
    stack, pod = kv_stack, kv_stack.pod
    hpa = HPA(HPASpec(1, 4, HPA_METRICS, sync_period=1.0))

    # Idle: nothing full, and the HPA holds at one replica.
    idle = await asyncio.to_thread(scrape, stack.exporter)
    assert pod_value(idle, "kvscale_vllm_up", pod) == 1.0
    assert pod_value(idle, "kvscale_vllm_kv_cache_usage_ratio", pod) == 0.0
    assert (await _hpa_decision(stack, hpa, 1)).desired == 1

    load = await _fill(stack)
    shown: tuple[float | None, ...] = ()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        shown = await stack.pressure()
        if None not in shown and shown[1] > 0:  # type: ignore[operator]
            break
        await asyncio.sleep(0.3)
    usage, preemptions, saturation = shown
    assert usage is not None and preemptions is not None and saturation is not None, shown
    assert (await _usage(stack.replica.session, stack.replica.url))[1] > 0  # the engine did preempt
    assert usage >= FULL and preemptions > 0
    assert saturation >= usage / POLICY.kv_target - 1e-9 > 1.0  # saturation is the max of its terms

    # The HPA model, through the real adapter, scales out at one of its next syncs (the adapter
    # refreshes from the exporter every 0.5 s).
    decision = await _hpa_decision(stack, hpa, 10)
    assert decision.desired >= 2 and decision.reason.startswith("scale up"), decision

    # A real Prometheus with the policy's shortened `for:` fires the KV alert.
    firing = await asyncio.to_thread(
        stack.prometheus.wait_for, 'ALERTS{alertname="KvscaleKVCacheNearlyFull",alertstate="firing"}', 30.0)
    assert firing[0]["metric"]["pod"] == pod
    for _ in range(8):
        await stack.pressure()
        await asyncio.sleep(0.2)
    await load.stop()
    assert not load.errors, load.errors[:3]

    # promtool: the shipped rules (default 5 m `for:`) fire on the exporter's own last 8 values, a minute apart.
    labels = {"namespace": "demo", "pod": pod, "model_name": stack.replica.fleet.profile.served_model_name}
    test_file = tmp_path / "kv.test.yml"
    shipped = sorted((REPO / "alerts" / "rules").glob("*.rules.yml"))
    test_file.write_text(yaml.safe_dump({"rule_files": [str(p) for p in shipped], "evaluation_interval": "1m",
                                         "tests": [_promtool_case(stack.observed[-8:], labels)]}))
    done = await asyncio.to_thread(subprocess.run, [promtool, "test", "rules", str(test_file)],
                                   capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
