"""The collection cycle over in-process targets: per-target failure, resets, the golden /metrics."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import aiohttp
import pytest

from exporter.app import Exporter
from exporter.collector import CycleContext, Series
from exporter.contract.exposition import parse
from exporter.settings import Settings, build
from exporter.vllm.collector import VllmCollector
from exporter.vllm.series import VllmPolicy
from exporter.vllm.targets import StaticTargets, parse_static
from tests.conftest import FIXTURES, free_port
from tests.exporter.helpers import DP2, SINGLE, ManualClock, vllm_target

GOLDEN = FIXTURES / "golden" / "metrics.txt"


def settings(**values: object) -> Settings:
    return build([("test", {"listen": "127.0.0.1:1", "interval": 5.0, "window": 60.0, "scrape_timeout": 1.0,
                            "gpu_price_per_hour": 2.5, **values})])


@asynccontextmanager
async def exporter_over(specs: Sequence[str], clock: ManualClock, **values: object) -> AsyncIterator[Exporter]:
    s = settings(**values)
    policy = VllmPolicy(window_seconds=s.window, quantiles=tuple(s.quantiles), thresholds=s.policy,
                        gpu_price_per_hour=s.gpu_price_per_hour or None, default_gpus_per_pod=s.gpus_per_pod)
    async with aiohttp.ClientSession() as session:
        vllm = VllmCollector(source=StaticTargets([parse_static(x) for x in specs]), session=session,
                             policy=policy, scrape_timeout=s.scrape_timeout, max_body_bytes=s.max_body_bytes)
        yield Exporter(settings=s, vllm=vllm, clock=clock)


def values(series: Sequence[Series], family: str) -> dict[str, float]:
    return {s.labels.get("pod", "") + ("/" + s.labels["quantile"] if "quantile" in s.labels else ""): s.value
            for s in series if s.family == family}


def mask_durations(body: str) -> str:
    return re.sub(r"(_duration_seconds\{[^}]*\}) \S+", r"\1 <duration>", body)


async def test_golden_metrics_output() -> None:
    clock = ManualClock(1000.0)
    dead = f"http://127.0.0.1:{free_port()}/metrics"
    async with vllm_target(DP2, clock=clock) as (a, _), vllm_target(SINGLE, clock=clock) as (b, _), \
            exporter_over([f"demo/vllm-a={a}", f"demo/vllm-b={b}", f"demo/vllm-dead={dead}"], clock) as exp:
        for _ in range(3):
            await exp.run_cycle()
            clock.now += 10.0
    body = mask_durations(exp.body.decode())
    if os.environ.get("KVSCALE_UPDATE_GOLDEN"):
        GOLDEN.write_text(body)
    assert body == GOLDEN.read_text()


async def test_a_dead_target_only_reports_up_zero_and_others_are_unaffected() -> None:
    clock = ManualClock()
    dead = f"http://127.0.0.1:{free_port()}/metrics"
    async with vllm_target(SINGLE, clock=clock) as (ok, _), \
            exporter_over([f"ns/ok={ok}", f"ns/dead={dead}"], clock) as exp:
        await exp.run_cycle()
        clock.now += 5
        series = await exp.run_cycle()
    assert values(series, "kvscale_vllm_up") == {"ok": 1.0, "dead": 0.0}
    assert "dead" not in values(series, "kvscale_vllm_requests_waiting")
    assert values(series, "kvscale_vllm_requests_waiting") == {"ok": 4.0}
    errors = {(s.labels["pod"], s.labels["reason"]): s.value for s in series
              if s.family == "kvscale_exporter_target_errors_total"}
    assert errors[("dead", "connect")] == 2 and errors[("ok", "connect")] == 0


async def test_a_target_that_goes_down_loses_its_series_instead_of_freezing() -> None:
    clock = ManualClock()
    async with vllm_target(SINGLE, clock=clock) as (url, state), exporter_over([f"ns/p={url}"], clock) as exp:
        await exp.run_cycle()
        clock.now += 5
        before = await exp.run_cycle()
        assert "p/0.95" in values(before, "kvscale_vllm_ttft_seconds")
        state.fault = "http_500"
        clock.now += 5
        after = await exp.run_cycle()
    assert values(after, "kvscale_vllm_up") == {"p": 0.0}
    assert [s.family for s in after if s.family.startswith("kvscale_vllm_")] == ["kvscale_vllm_up"]
    # The model name survives the outage so dashboards can still join on it.
    assert {s.labels["model_name"] for s in after if s.family == "kvscale_vllm_up"} == {"tiny-llama"}


async def test_a_restarted_vllm_never_gives_negative_rates_or_bogus_quantiles() -> None:
    clock = ManualClock()
    async with vllm_target(SINGLE, clock=clock) as (url, state), exporter_over([f"ns/p={url}"], clock) as exp:
        for _ in range(4):
            await exp.run_cycle()
            clock.now += 5
        state.started = clock.now  # restart: counters back to the fixture's (lower) values
        series = await exp.run_cycle()
    for family in ("kvscale_vllm_prompt_tokens_per_second", "kvscale_vllm_generation_tokens_per_second",
                   "kvscale_vllm_preemptions_per_second"):
        assert values(series, family)["p"] >= 0
    ttft = values(series, "kvscale_vllm_ttft_seconds")
    assert 0 < ttft["p/0.5"] <= ttft["p/0.95"] <= ttft["p/0.99"] <= 2560


async def test_no_new_request_in_the_window_means_no_quantile_and_no_cost() -> None:
    clock = ManualClock()
    async with vllm_target(SINGLE, growth=0.0, clock=clock) as (url, _), \
            exporter_over([f"ns/p={url}"], clock) as exp:
        await exp.run_cycle()
        clock.now += 5
        series = await exp.run_cycle()
    families = {s.family for s in series}
    assert "kvscale_vllm_ttft_seconds" not in families
    assert "kvscale_vllm_cost_per_million_tokens_dollars" not in families
    assert values(series, "kvscale_vllm_generation_tokens_per_second") == {"p": 0.0}
    assert values(series, "kvscale_vllm_kv_cache_usage_ratio") == {"p": pytest.approx(0.4321)}


async def test_removed_target_is_forgotten() -> None:
    clock = ManualClock()
    async with vllm_target(SINGLE, clock=clock) as (url, _):
        source = StaticTargets([parse_static(f"ns/p={url}")])
        s = settings()
        policy = VllmPolicy(window_seconds=60, quantiles=(0.5,), thresholds=s.policy, gpu_price_per_hour=None,
                            default_gpus_per_pod=1)
        async with aiohttp.ClientSession() as session:
            vllm = VllmCollector(source=source, session=session, policy=policy, scrape_timeout=1,
                                 max_body_bytes=1 << 20)
            await vllm.collect(CycleContext(now=0))
            assert len(vllm) == 1
            source._targets = ()
            assert await vllm.collect(CycleContext(now=5)) == []
            assert vllm.derived(CycleContext(now=5)) == []


async def test_pod_gpus_from_attribution_drive_the_cost() -> None:
    clock = ManualClock()
    async with vllm_target(SINGLE, clock=clock) as (url, _), exporter_over([f"ns/p={url}"], clock) as exp:
        await exp.run_cycle()
        clock.now += 5
        await exp.vllm.collect(CycleContext(now=clock.now))
        one = values(exp.vllm.derived(CycleContext(now=clock.now)), "kvscale_vllm_cost_per_million_tokens_dollars")
        four = values(exp.vllm.derived(CycleContext(now=clock.now, pod_gpus={("ns", "p"): 4})),
                      "kvscale_vllm_cost_per_million_tokens_dollars")
    assert four["p"] == pytest.approx(4 * one["p"])


def test_golden_file_is_a_valid_exposition() -> None:
    text = GOLDEN.read_text().replace("<duration>", "0.001")
    assert parse(text).samples["kvscale_vllm_up"]


async def test_a_slow_target_times_out_alone_without_delaying_the_others() -> None:
    clock = ManualClock()
    async with vllm_target(SINGLE, clock=clock) as (fast, _), vllm_target(SINGLE, clock=clock) as (slow, state), \
            exporter_over([f"ns/fast={fast}", f"ns/slow={slow}"], clock, scrape_timeout=0.5) as exp:
        state.fault, state.slow_seconds = "slow", 5.0
        series = await exp.run_cycle()
    assert values(series, "kvscale_vllm_up") == {"fast": 1.0, "slow": 0.0}
    durations = values(series, "kvscale_exporter_target_scrape_duration_seconds")
    # Scrapes run concurrently: the fast one finished long before the slow one hit its deadline.
    assert durations["fast"] < 0.5 <= durations["slow"]
    errors = {(s.labels["pod"], s.labels["reason"]): s.value for s in series
              if s.family == "kvscale_exporter_target_errors_total"}
    assert errors[("slow", "timeout")] == 1
