"""The prometheus source against a real Prometheus scraping fake exporters the way clusters get it wrong:
one exporter scraped by two jobs, one scraped without honor_labels, one whose sample is old."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from adapter.promsource import PrometheusProvider, PrometheusSettings
from adapter.provider import MetricQuery, SourceMisconfiguredError
from adapter.selectors import parse_selector
from tests.adapter.helpers import EXPOSITION, FakeExporter
from tests.conftest import PrometheusServer

AGE = 20.0  # seconds the "late" exporter's sample is behind, by its own timestamp


@dataclass
class Scraped:
    prometheus: PrometheusServer
    sample_ms: int  # the late sample's own timestamp


def _host(exporter: FakeExporter) -> str:
    return exporter.url.removeprefix("http://").rstrip("/")


async def _until(prometheus: PrometheusServer, expr: str, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(await asyncio.to_thread(prometheus.query, expr)) < count:  # the exporters answer on this loop
        assert time.monotonic() < deadline, f"Prometheus has no {expr} after {timeout}s"
        await asyncio.sleep(0.5)


@pytest.fixture
async def scraped(prometheus_factory: Callable[..., PrometheusServer]) -> AsyncIterator[Scraped]:
    sample_ms = int((time.time() - AGE) * 1000)
    twice = FakeExporter()
    unhonored = FakeExporter(EXPOSITION.replace(b'namespace="llm"', b'namespace="other"'))
    late = FakeExporter(b'kvscale_vllm_requests_waiting{namespace="late",pod="p",model_name="m"} 3 %d\n' % sample_ms)
    for exporter in (twice, unhonored, late):
        await exporter.server.start_server()
    jobs: list[dict[str, Any]] = [
        {"job_name": "kvscale-servicemonitor", "honor_labels": True, "static_configs": [{"targets": [_host(twice)]}]},
        {"job_name": "kvscale-podmonitor", "honor_labels": True, "static_configs": [{"targets": [_host(twice)]}]},
        # As Kubernetes discovery labels the target: the exporter pod's own namespace and pod.
        {"job_name": "kvscale-unhonored", "static_configs": [{"targets": [_host(unhonored)], "labels": {
            "namespace": "monitoring", "pod": "kvscale-exporter-x7k2p"}}]},
        {"job_name": "kvscale-late", "honor_labels": True, "static_configs": [{"targets": [_host(late)]}]},
    ]
    prometheus = await asyncio.to_thread(prometheus_factory, {"scrape_configs": jobs})
    try:
        await _until(prometheus, 'kvscale_vllm_requests_waiting{namespace="llm"}', 6)
        await _until(prometheus, 'kvscale_vllm_requests_waiting{exported_namespace="other"}', 3)
        await _until(prometheus, 'kvscale_vllm_requests_waiting{namespace="late"}', 1)
        yield Scraped(prometheus, sample_ms)
    finally:
        for exporter in (twice, unhonored, late):
            await exporter.server.close()


def provider(session: aiohttp.ClientSession, scraped: Scraped) -> PrometheusProvider:
    return PrometheusProvider(session=session, settings=PrometheusSettings(scraped.prometheus.url, max_age=60))


async def test_an_exporter_scraped_by_two_jobs_is_one_value_per_pod(scraped: Scraped) -> None:
    """Two jobs gave every pod two series: every request was a 400 blaming the metric selector."""
    async with aiohttp.ClientSession() as session:
        source = provider(session, scraped)
        values = await source.pod_values("llm", ["vllm-7d9c6-abcde", "vllm-7d9c6-fghij"],
                                         MetricQuery("kvscale_vllm_requests_waiting"))
        assert {v.pod: v.value for v in values} == {"vllm-7d9c6-abcde": 5.0, "vllm-7d9c6-fghij": 12000.0}
        p99 = await source.pod_values("llm", ["vllm-7d9c6-abcde"], MetricQuery(
            "kvscale_vllm_ttft_seconds", parse_selector("quantile=0.99")))
        assert len(p99) == 1


async def test_a_job_without_honor_labels_is_named_in_the_error_and_the_log(
        scraped: Scraped, caplog: pytest.LogCaptureFixture) -> None:
    """Without honor_labels the exporter's namespace/pod became exported_*: every request was a plain 404."""
    async with aiohttp.ClientSession() as session:
        source = provider(session, scraped)
        with caplog.at_level(logging.WARNING, "adapter.promsource"), \
                pytest.raises(SourceMisconfiguredError, match="kvscale-unhonored") as err:
            await source.pod_values("other", ["vllm-7d9c6-abcde"], MetricQuery("kvscale_vllm_requests_waiting"))
        assert "honor_labels" in str(err.value) and "exported_namespace" in str(err.value)
        assert any("kvscale-unhonored" in r.getMessage() and "honor_labels" in r.getMessage()
                   for r in caplog.records)
        # A namespace that simply has no data is still just absent, not a configuration error.
        assert await source.pod_values("nobody", ["x"], MetricQuery("kvscale_vllm_requests_waiting")) == []


async def test_the_timestamp_is_the_samples_own(scraped: Scraped) -> None:
    """The query time was reported: a value 58 s old looked current to the HPA."""
    async with aiohttp.ClientSession() as session:
        values = await provider(session, scraped).pod_values("late", ["p"],
                                                             MetricQuery("kvscale_vllm_requests_waiting"))
    assert [(v.value, v.timestamp) for v in values] == [(3.0, scraped.sample_ms / 1000)]


async def test_a_sample_older_than_max_age_is_left_out(scraped: Scraped) -> None:
    async with aiohttp.ClientSession() as session:
        source = PrometheusProvider(session=session,
                                    settings=PrometheusSettings(scraped.prometheus.url, max_age=AGE / 2))
        assert await source.pod_values("late", ["p"], MetricQuery("kvscale_vllm_requests_waiting")) == []
