from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import aiohttp
import pytest

from adapter.direct import DirectProvider, DirectSettings, read_exposition
from adapter.endpoints import StaticEndpoints
from adapter.provider import AmbiguousMetricError, MetricQuery, SourceUnavailableError, UnknownMetricError
from adapter.selectors import parse_selector
from exporter.contract.exposition import ExpositionError
from tests.adapter.helpers import EXPOSITION, FIXTURES, FakeExporter
from tests.conftest import Processes, start_static


def test_read_exposition_groups_by_pod_and_reads_up() -> None:
    pods = read_exposition(EXPOSITION, wall=100.0, mono=5.0)
    assert set(pods) == {("llm", "vllm-7d9c6-abcde"), ("llm", "vllm-7d9c6-fghij"), ("llm", "vllm-7d9c6-loading"),
                         ("llm", "vllm-sts-0")}
    assert pods[("llm", "vllm-7d9c6-loading")].up is False
    snap = pods[("llm", "vllm-7d9c6-abcde")]
    assert snap.up and snap.wall == 100.0 and len(snap.series["kvscale_vllm_ttft_seconds"]) == 4
    assert "kvscale_exporter_build_info" not in snap.series


def test_read_exposition_rejects_a_truncated_body() -> None:
    with pytest.raises(ExpositionError):
        read_exposition(EXPOSITION[:-30], wall=0, mono=0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def provider_over(*exporters: FakeExporter, clock: Clock, max_age: float = 4.0) -> tuple[DirectProvider,
                                                                                                 aiohttp.ClientSession]:
    for e in exporters:
        await e.server.start_server()
    session = aiohttp.ClientSession()
    provider = DirectProvider(endpoints=StaticEndpoints([e.url for e in exporters]), session=session,
                              settings=DirectSettings(max_age=max_age, timeout=2.0), monotonic=clock)
    return provider, session


async def test_two_exporters_one_down_its_pods_age_out() -> None:
    clock = Clock()
    other = EXPOSITION.replace(b'pod="vllm-sts-0"', b'pod="vllm-other-0"')
    good, bad = FakeExporter(), FakeExporter(other)
    provider, session = await provider_over(good, bad, clock=clock)
    try:
        await provider.refresh_once()
        query = MetricQuery("kvscale_vllm_requests_waiting")
        assert {v.pod for v in await provider.pod_values("llm", ["vllm-sts-0", "vllm-other-0"], query)} == \
            {"vllm-sts-0", "vllm-other-0"}
        bad.status = 503
        clock.now += 2
        await provider.refresh_once()
        # Within max age the last good read still counts; past it the pod is left out.
        assert len(await provider.pod_values("llm", ["vllm-other-0"], query)) == 1
        clock.now += 3
        await provider.refresh_once()
        assert await provider.pod_values("llm", ["vllm-other-0"], query) == []
        assert provider.ready  # one exporter still answers: not an outage
    finally:
        await session.close()
        for e in (good, bad):
            await e.server.close()


async def test_garbage_exporter_body_is_an_outage_not_a_value() -> None:
    clock = Clock()
    broken = FakeExporter(b"kvscale_vllm_requests_waiting{pod= 1\n")
    provider, session = await provider_over(broken, clock=clock)
    try:
        await provider.refresh_once()
        assert not provider.ready
        with pytest.raises(SourceUnavailableError, match="ExpositionError"):
            await provider.pod_values("llm", ["vllm-7d9c6-abcde"], MetricQuery("kvscale_vllm_requests_waiting"))
    finally:
        await session.close()
        await broken.server.close()


async def test_metric_rules() -> None:
    clock = Clock()
    exporter = FakeExporter(EXPOSITION.replace(b"} 300.5", b"} NaN"))
    provider, session = await provider_over(exporter, clock=clock)
    try:
        await provider.refresh_once()
        with pytest.raises(UnknownMetricError):
            await provider.pod_values("llm", ["vllm-7d9c6-abcde"], MetricQuery("kvscale_vllm_up"))
        with pytest.raises(AmbiguousMetricError):
            await provider.pod_values("llm", ["vllm-7d9c6-abcde"],
                                      MetricQuery("kvscale_vllm_ttft_seconds", parse_selector("quantile")))
        p95 = await provider.pod_value("llm", "vllm-7d9c6-abcde", MetricQuery("kvscale_vllm_ttft_seconds"))
        assert p95 is not None and p95.value == 0.75 and p95.window_seconds == 60  # default quantile is 0.95
        nan = await provider.pod_value("llm", "vllm-7d9c6-fghij", MetricQuery("kvscale_vllm_prompt_tokens_per_second"))
        assert nan is None  # NaN is not a value
        other_model = MetricQuery("kvscale_vllm_requests_waiting", parse_selector("model_name=mistral-7b"))
        assert [v.pod for v in await provider.pod_values("llm", ["vllm-7d9c6-abcde", "vllm-sts-0"], other_model)] \
            == ["vllm-sts-0"]
    finally:
        await session.close()
        await exporter.server.close()


async def test_refresh_on_its_own_thread_goes_on_while_the_serving_loop_is_busy(tmp_path: Path) -> None:
    """1,000 TLS clients kept the serving loop so busy that reads scheduled on it overran their timeout and
    every pod aged out; the refresh now runs on its own thread and loop."""
    procs = Processes()
    try:
        url = start_static(procs, "exporter", FIXTURES / "exporter.prom")
        async with aiohttp.ClientSession() as session:
            provider = DirectProvider(endpoints=StaticEndpoints([url]), session=session,
                                      settings=DirectSettings(refresh_interval=0.1, max_age=1.0))
            refresh = asyncio.create_task(provider.run_in_thread())
            for _ in range(200):
                if provider.ready:
                    break
                await asyncio.sleep(0.05)
            before = provider.generation
            time.sleep(2.0)  # the serving loop is blocked, as under a flood of requests
            assert provider.generation >= before + 5
            values = await provider.pod_values("llm", ["vllm-7d9c6-abcde"],
                                               MetricQuery("kvscale_vllm_requests_waiting"))
            assert [v.value for v in values] == [5.0]
            refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresh
    finally:
        procs.stop()
