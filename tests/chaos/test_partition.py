"""Network partition: one vLLM target black-holed in its own network namespace, one that accepts and
never answers. Their series go within the scrape timeout (`up 0`, nothing frozen), the healthy target
is untouched, and the adapter (direct source over the exporter) leaves the pods out instead of
reporting 0; when the link comes back, so does the pod.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from exporter.contract import catalog
from exporter.contract.exposition import Exposition
from simulator.autoscaling import MetricTarget
from simulator.autoscaling.adapter_source import AdapterClient
from simulator.demo_stack import PKI
from tests.chaos.adapters import SCALE_TARGET, AdapterProcess, adapter_process, wait_ready, write_pods
from tests.chaos.conftest import pod_value, pods_with, scrape
from tests.chaos.network import Netns, SilentServer
from tests.conftest import PYTHON, VLLM_FIXTURES, Processes, free_port, start_exporter, start_target, wait_http

pytestmark = pytest.mark.chaos

INTERVAL, SCRAPE_TIMEOUT = 1.0, 0.5  # start_exporter's --interval and --scrape-timeout
FIXTURE = VLLM_FIXTURES / "v0.33.0-single-engine.prom"
FAR, NEAR, HUNG = "vllm-7d9c6-far", "vllm-7d9c6-near", "vllm-7d9c6-hung"
CAPACITY = MetricTarget("Pods", "kvscale_vllm_kv_cache_capacity_tokens", "AverageValue", 1.0)
VLLM_FAMILIES = [f.name for f in catalog.of_subsystem("vllm") if f.name != "kvscale_vllm_up"]


def _series_of(m: Exposition, pod: str) -> set[str]:
    return {family for family in VLLM_FAMILIES if pod in pods_with(m, family)}


def _settled(exporter: str) -> Exposition:
    """A collection with the windowed families too (the window holds two readings)."""
    deadline = time.monotonic() + 15
    while True:
        m = scrape(exporter)
        if NEAR in pods_with(m, "kvscale_vllm_generation_tokens_per_second") or time.monotonic() > deadline:
            return m
        time.sleep(0.2)


@dataclass
class Partitioned:
    ns: Netns
    exporter: str
    adapter: AdapterProcess
    pki: PKI


@pytest.fixture
async def stack(netns: Callable[[], Netns], procs: Processes, silent_server: SilentServer, pki: PKI,
                tmp_path: Path) -> Partitioned:
    """The far pod in its own namespace, the near one on loopback, the hung one; exporter and adapter."""
    ns = netns()
    port = free_port()
    procs.start("vllm-far", ns.command([PYTHON, "-m", "simulator.target", "--listen", f"{ns.ns_ip}:{port}",
                                        "--fixture", str(FIXTURE), "--growth", "0.05"]))
    far = f"http://{ns.ns_ip}:{port}"
    await asyncio.to_thread(wait_http, far + "/metrics")
    near = await asyncio.to_thread(start_target, procs, "vllm-near", FIXTURE)
    exporter = await asyncio.to_thread(start_exporter, procs, "exporter", {
        f"demo/{FAR}": far, f"demo/{NEAR}": near, f"demo/{HUNG}": silent_server.url})
    adapter = adapter_process(procs, pki, "adapter", exporter_urls=[exporter],
                              pods_file=write_pods(tmp_path, [FAR, NEAR, HUNG]))
    await asyncio.to_thread(wait_ready, pki, adapter.url)
    return Partitioned(ns, exporter, adapter, pki)


async def _cut(stack: Partitioned, full: set[str]) -> None:
    """Black-hole the far pod; its series must go within the next collection, the near pod's stay."""
    cut = time.monotonic()
    await asyncio.to_thread(stack.ns.blackhole)
    seen: list[Exposition] = []
    while time.monotonic() - cut < 10:
        m = await asyncio.to_thread(scrape, stack.exporter)
        seen.append(m)
        if pod_value(m, "kvscale_vllm_up", FAR) == 0.0:
            break
        await asyncio.sleep(0.05)
    gone = time.monotonic()
    assert pod_value(seen[-1], "kvscale_vllm_up", FAR) == 0.0, "the partitioned target still reads up"
    # Within the collection that follows the cut: one interval plus that scrape's timeout, plus slack.
    assert gone - cut <= INTERVAL + SCRAPE_TIMEOUT + 0.5
    assert _series_of(seen[-1], FAR) == set()  # gone, not frozen
    # The healthy pod kept every series in every collection, and the cycle kept its deadline.
    assert [_series_of(s, NEAR) for s in seen] == [full] * len(seen)
    assert all(pod_value(s, "kvscale_vllm_up", NEAR) == 1.0 for s in seen)
    durations = [v for s in seen for labels, v in s.samples["kvscale_exporter_collector_duration_seconds"]
                 if labels["collector"] == "vllm"]
    assert durations and max(durations) < INTERVAL


async def test_partitioned_and_hung_targets_drop_out_alone(stack: Partitioned, silent_server: SilentServer) -> None:
    # Before: the far pod is served; the hung one is `up 0` and nothing else, from the start.
    m = await asyncio.to_thread(_settled, stack.exporter)
    full = _series_of(m, NEAR)
    assert pod_value(m, "kvscale_vllm_up", FAR) == 1.0 and _series_of(m, FAR) == full
    assert pod_value(m, "kvscale_vllm_up", HUNG) == 0.0 and _series_of(m, HUNG) == set()
    assert (pod_value(m, "kvscale_exporter_target_errors_total", HUNG, reason="timeout") or 0) >= 1
    assert silent_server.accepted >= 1

    async with aiohttp.ClientSession() as session:
        client = AdapterClient(stack.adapter.url, session=session, ssl_context=stack.pki.front_proxy_context(),
                               target=SCALE_TARGET)

        async def served() -> dict[str, float]:
            fetched = await client.fetch([CAPACITY])
            return dict(fetched.pod_values.get(CAPACITY.key, {}))

        before = await served()
        assert set(before) == {FAR, NEAR} and min(before.values()) > 0

        await _cut(stack, full)
        # The adapter leaves the pod out (never a 0), within its refresh; the near pod stays.
        answers: list[dict[str, float]] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            answers.append(await served())
            if FAR not in answers[-1]:
                break
            await asyncio.sleep(0.1)
        assert set(answers[-1]) == {NEAR}
        assert all(a.get(FAR, 1.0) > 0 and a[NEAR] > 0 for a in answers)
        m = await asyncio.to_thread(scrape, stack.exporter)
        assert (pod_value(m, "kvscale_exporter_target_errors_total", FAR, reason="timeout") or 0) >= 1

        # Healed: the pod comes back in the exporter and then in the adapter.
        await asyncio.to_thread(stack.ns.heal)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            m = await asyncio.to_thread(scrape, stack.exporter)
            if pod_value(m, "kvscale_vllm_up", FAR) == 1.0 and FAR in await served():
                break
            await asyncio.sleep(0.2)
        assert pod_value(m, "kvscale_vllm_up", FAR) == 1.0 and FAR in await served()
        assert pod_value(m, "kvscale_vllm_up", HUNG) == 0.0 and HUNG not in await served()
