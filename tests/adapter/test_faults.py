"""Faults answered without a fabricated value: a pod deleted mid-request, Prometheus errors and timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from adapter.direct import DirectProvider
from adapter.inventory import load_pod_file
from adapter.promsource import PrometheusProvider, PrometheusSettings
from adapter.provider import MetricInfo, MetricQuery, PodValue
from adapter.selfmetrics import SelfMetrics
from adapter.server import Security, build_app
from adapter.service import MetricsService
from tests.adapter.helpers import CUSTOM, EXPOSITION, PODS, direct_adapter

PODS_QUERY = CUSTOM + "/v1beta2/namespaces/llm/pods/*/kvscale_vllm_requests_waiting?labelSelector=app%3Dvllm"


class DeletesMidRequest:
    """Wraps the direct provider: between pod resolution and the value lookup, a pod vanishes from its exporter."""

    def __init__(self, inner: DirectProvider, on_lookup: Callable[[], Awaitable[None]]) -> None:
        self._inner = inner
        self._on_lookup = on_lookup
        self.generation: int | None = None  # never cache: the point is the race
        self.ready = True

    def list_metrics(self) -> Sequence[MetricInfo]:
        return self._inner.list_metrics()

    async def pod_value(self, namespace: str, pod: str, query: MetricQuery) -> PodValue | None:
        return await self._inner.pod_value(namespace, pod, query)

    async def pod_values(self, namespace: str, pods: Sequence[str], query: MetricQuery) -> list[PodValue]:
        await self._on_lookup()
        return await self._inner.pod_values(namespace, pods, query)


async def test_pod_deleted_mid_request_is_left_out() -> None:
    async with direct_adapter() as h:
        async def delete_pod() -> None:
            h.exporter.body = EXPOSITION.replace(b'pod="vllm-7d9c6-fghij"', b'pod="elsewhere"')
            await h.provider.refresh_once()

        provider = DeletesMidRequest(h.provider, delete_pod)
        app = build_app(service=MetricsService(provider=provider, pods=load_pod_file(PODS)),
                        security=Security(authenticator=None), metrics=SelfMetrics(registry=CollectorRegistry()))
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            resp = await client.get(PODS_QUERY)
            body = await resp.json()
    assert resp.status == 200
    assert [(i["describedObject"]["name"], i["value"]) for i in body["items"]] == [("vllm-7d9c6-abcde", "5")]


class FakePrometheus:
    def __init__(self) -> None:
        self.mode = "error"
        self.seen: list[tuple[str | None, str]] = []
        app = web.Application()
        app.router.add_post("/api/v1/query", self._query)
        self.server = TestServer(app, host="127.0.0.1")

    async def _query(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.seen.append((request.headers.get("Authorization"), str(form["query"])))
        if self.mode == "ok":
            return web.json_response({"status": "success", "data": {"resultType": "vector", "result": [
                {"metric": {"namespace": "llm", "pod": "vllm-7d9c6-abcde"}, "value": [1700000000.5, "5"]},
                {"metric": {"namespace": "llm", "pod": "vllm-7d9c6-fghij"}, "value": [1700000000.5, "NaN"]}]}})
        if self.mode == "slow":
            await asyncio.sleep(5)
        if self.mode == "html":
            return web.Response(text="<html>proxy error</html>", status=502)
        return web.json_response({"status": "error", "errorType": "bad_data", "error": "parse error"}, status=400)


@pytest.fixture
async def prom_app() -> AsyncIterator[tuple[FakePrometheus, TestClient[web.Request, web.Application]]]:
    fake = FakePrometheus()
    await fake.server.start_server()
    async with aiohttp.ClientSession() as session:
        provider = PrometheusProvider(session=session, settings=PrometheusSettings(
            str(fake.server.make_url("/")), timeout=0.5, authorization="Bearer s3cret"))
        app = build_app(service=MetricsService(provider=provider, pods=load_pod_file(PODS)),
                        security=Security(authenticator=None), metrics=SelfMetrics(registry=CollectorRegistry()))
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            yield fake, client
    await fake.server.close()


@pytest.mark.parametrize("mode", ["error", "slow", "html"])
async def test_prometheus_failures_are_503_never_a_value(
        prom_app: tuple[FakePrometheus, TestClient[web.Request, web.Application]], mode: str,
        caplog: pytest.LogCaptureFixture) -> None:
    fake, client = prom_app
    fake.mode = mode
    resp = await client.get(PODS_QUERY)
    body = await resp.json()
    assert (resp.status, body["kind"], body["reason"]) == (503, "Status", "ServiceUnavailable")
    assert body["message"] == "the metrics source is unavailable"
    assert "Prometheus" in caplog.text  # the cause is logged for the operator


async def test_prometheus_answer_with_auth_header_and_nan_left_out(
        prom_app: tuple[FakePrometheus, TestClient[web.Request, web.Application]]) -> None:
    fake, client = prom_app
    fake.mode = "ok"
    resp = await client.get(PODS_QUERY)
    body = await resp.json()
    assert resp.status == 200
    assert [(i["describedObject"]["name"], i["value"], i["timestamp"]) for i in body["items"]] == \
        [("vllm-7d9c6-abcde", "5", "2023-11-14T22:13:20Z")]
    header, query = fake.seen[-1]
    assert header == "Bearer s3cret"
    assert query.startswith('label_replace(max by (namespace, pod, model_name) (kvscale_vllm_requests_waiting{'
                            'namespace="llm"}')
