"""End to end through the collector: simulated targets serving expositions rendered by vLLM's own code."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp
import pytest

from exporter.collector import CycleContext, Series
from exporter.settings import build
from exporter.vllm.collector import VllmCollector
from exporter.vllm.series import VllmPolicy
from exporter.vllm.targets import StaticTargets, parse_static
from simulator.target import load_template
from tests.conftest import VLLM_FIXTURES
from tests.exporter.helpers import ManualClock, vllm_target


def collector(session: aiohttp.ClientSession, specs: Sequence[str]) -> VllmCollector:
    s = build([("test", {"listen": "127.0.0.1:1", "window": 60.0})])
    policy = VllmPolicy(window_seconds=60, quantiles=(0.5,), thresholds=s.policy, gpu_price_per_hour=None,
                        default_gpus_per_pod=1)
    return VllmCollector(source=StaticTargets([parse_static(x) for x in specs]), session=session, policy=policy,
                         scrape_timeout=1, max_body_bytes=1 << 20)


def by_pod(series: Sequence[Series], family: str) -> dict[str, float]:
    return {s.labels["pod"]: s.value for s in series if s.family == family}


async def test_fragmentation_is_absent_only_for_the_hybrid_model() -> None:
    clock = ManualClock()
    async with vllm_target(VLLM_FIXTURES / "v0.33.0-dp2-unequal-blocks.prom", growth=0.0, clock=clock) as (dp, _), \
            vllm_target(VLLM_FIXTURES / "v0.33.0-single-engine-len-4001.prom", growth=0.0, clock=clock) as (odd, _), \
            vllm_target(VLLM_FIXTURES / "v0.33.0-hybrid-swa.prom", growth=0.0, clock=clock) as (hybrid, _), \
            vllm_target(VLLM_FIXTURES / "v0.33.0-hybrid-swa-dp2-unequal-blocks.prom", growth=0.0,
                        clock=clock) as (hybrid_dp, _), \
            aiohttp.ClientSession() as session:
        vllm = collector(session, [f"ns/dp={dp}", f"ns/odd={odd}", f"ns/hybrid={hybrid}",
                                   f"ns/hybrid-dp={hybrid_dp}"])
        await vllm.collect(CycleContext(now=0))
        series = vllm.derived(CycleContext(now=0))
    assert by_pod(series, "kvscale_vllm_up") == {"dp": 1, "odd": 1, "hybrid": 1, "hybrid-dp": 1}
    # DP=2 of 12345 + 11800 blocks: (5+6) running, half of 15 slots each, over used slots with
    # N/D blocks per engine; one engine with max_model_len 4001: 7 running at usage 0.4321.
    assert by_pod(series, "kvscale_vllm_kv_cache_fragmentation_ratio") == {
        "dp": pytest.approx(11 * 7.5 / ((0.25 + 0.75) * (24145 / 2 - 1) * 16)),
        "odd": pytest.approx(7 * 7.5 / (0.4321 * 12344 * 16)),
    }
    assert by_pod(series, "kvscale_vllm_kv_cache_capacity_tokens") == {
        "dp": pytest.approx(24145 * 16), "odd": 12345 * 4001 // 251, "hybrid": 242518, "hybrid-dp": 2 * 231811}
    # DP usage is block-weighted with the mean engine size (vLLM exports only the sum).
    assert by_pod(series, "kvscale_vllm_kv_cache_usage_ratio")["dp"] == pytest.approx(0.5)


async def test_a_frontend_restart_in_one_reason_is_counted_per_series() -> None:
    clock = ManualClock()
    renders = [(VLLM_FIXTURES / f"v0.33.0-admission-{step}.prom").read_text()
               for step in ("t0", "t1", "t2-restarted")]
    async with vllm_target(VLLM_FIXTURES / "v0.33.0-admission-t0.prom", growth=0.0, clock=clock) as (url, state), \
            aiohttp.ClientSession() as session:
        vllm = collector(session, [f"ns/p={url}"])
        for step, text in enumerate(renders):
            state.lines = load_template(text)
            state.changed()
            clock.now = 10.0 * step
            await vllm.collect(CycleContext(now=clock.now))
        series = vllm.derived(CycleContext(now=clock.now))
    # max_num_queued_reqs 4 -> 6 -> (restart) 1, max_num_queued_tokens 0 -> 0 -> 7: 2 + 1 + 7
    # over 20 s. Applied to the sum (4 -> 6 -> 8) the reset rule would see 4, and 0.2/s.
    assert by_pod(series, "kvscale_vllm_admission_rejections_per_second") == {"p": pytest.approx(10 / 20)}
