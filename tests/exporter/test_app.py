"""The HTTP surface: /metrics in text format 0.0.4 from the last cycle, /healthz, /readyz."""

from __future__ import annotations

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from exporter.app import Exporter
from exporter.settings import build
from exporter.vllm.collector import VllmCollector
from exporter.vllm.series import VllmPolicy
from exporter.vllm.targets import StaticTargets
from tests.exporter.helpers import SINGLE, running_exporter, vllm_target


async def test_serves_metrics_health_and_readiness_over_http() -> None:
    async with vllm_target(SINGLE) as (url, _), running_exporter(
            {"vllm_target": [f"ns/p={url}"], "interval": 0.5, "window": 5, "scrape_timeout": 0.3},
            until="/readyz") as listen, aiohttp.ClientSession() as session:
        # Prometheus asks for OpenMetrics; the answer stays text 0.0.4 with colon-free names intact.
        headers = {"Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"}
        async with session.get(f"http://{listen}/metrics", headers=headers) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
            body = await resp.text()
        async with session.get(f"http://{listen}/healthz") as resp:
            assert resp.status == 200
    assert 'kvscale_vllm_up{model_name="tiny-llama",namespace="ns",pod="p"} 1.0' in body
    assert 'kvscale_exporter_build_info{version="0.1.0"} 1.0' in body
    assert "# EOF" not in body


async def test_metrics_healthz_and_readyz_are_503_until_the_first_collection() -> None:
    settings = build([("test", {"listen": "127.0.0.1:1", "nvml": "off"})])
    policy = VllmPolicy(window_seconds=60, quantiles=(0.5,), thresholds=settings.policy,
                        gpu_price_per_hour=None, default_gpus_per_pod=1)
    async with aiohttp.ClientSession() as session:
        vllm = VllmCollector(source=StaticTargets([]), session=session, policy=policy, scrape_timeout=1,
                             max_body_bytes=1024)
        exporter = Exporter(settings=settings, vllm=vllm)
        async with TestClient(TestServer(exporter.app())) as client:
            assert (await client.get("/metrics")).status == 503
            assert (await client.get("/readyz")).status == 503
            assert (await client.get("/healthz")).status == 503  # alive is: collections complete
            await exporter.run_cycle()
            assert (await client.get("/metrics")).status == 200
            assert (await client.get("/readyz")).status == 200
            assert (await client.get("/healthz")).status == 200
