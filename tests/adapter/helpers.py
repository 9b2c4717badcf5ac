"""Test helpers: a controllable fake exporter, the adapter app over it, and fixture paths."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from adapter.direct import DirectProvider, DirectSettings
from adapter.endpoints import StaticEndpoints
from adapter.inventory import load_pod_file
from adapter.selfmetrics import SelfMetrics
from adapter.server import Security, build_app
from adapter.service import MetricsService

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "adapter"
EXPOSITION = (FIXTURES / "exporter.prom").read_bytes()
PODS = FIXTURES / "pods.yaml"
CUSTOM = "/apis/custom.metrics.k8s.io"


class FakeExporter:
    """Serves ``body`` at /metrics with ``status``; tests change both between refreshes."""

    def __init__(self, body: bytes = EXPOSITION) -> None:
        self.body = body
        self.status = 200
        self.hits = 0
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self.server = TestServer(app, host="127.0.0.1")

    async def _metrics(self, request: web.Request) -> web.Response:
        self.hits += 1
        return web.Response(body=self.body, status=self.status, content_type="text/plain")

    @property
    def url(self) -> str:
        return str(self.server.make_url("/"))


@dataclass
class Harness:
    client: TestClient[web.Request, web.Application]
    provider: DirectProvider
    exporter: FakeExporter
    registry: CollectorRegistry


@asynccontextmanager
async def direct_adapter(*, max_age: float = 60.0, external: bool = False,
                         security: Security | None = None,
                         monotonic: Callable[[], float] | None = None) -> AsyncIterator[Harness]:
    exporter = FakeExporter()
    await exporter.server.start_server()
    async with aiohttp.ClientSession() as session:
        provider = DirectProvider(endpoints=StaticEndpoints([exporter.url]), session=session,
                                  settings=DirectSettings(refresh_interval=1.0, max_age=max_age, timeout=2.0),
                                  **({"monotonic": monotonic} if monotonic else {}))
        await provider.refresh_once()
        registry = CollectorRegistry()
        app = build_app(service=MetricsService(provider=provider, pods=load_pod_file(PODS)),
                        security=security or Security(authenticator=None),
                        metrics=SelfMetrics(registry=registry, freshness=provider.snapshot_ages),
                        external=external,
                        not_ready=lambda: () if provider.ready else ("the direct source has not answered yet",))
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        try:
            yield Harness(client, provider, exporter, registry)
        finally:
            await client.close()
            await exporter.server.close()
