"""Delegated authorization under a hung or absent kube-apiserver: deadlines, one review per burst, and a
hung review never stalling exporter discovery, the direct source or answers already authorized."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from kubernetes import client
from prometheus_client import CollectorRegistry

from adapter.auth import User
from adapter.authz import Attributes, AuthorizationError, DelegatedAuthorizer
from adapter.direct import DirectProvider, DirectSettings
from adapter.endpoints import StaticEndpoints
from adapter.inventory import load_pod_file
from adapter.kube import KubeExporterEndpoints
from adapter.selfmetrics import SelfMetrics
from adapter.server import ResponseCache, Security, build_app, request_attributes
from adapter.service import MetricsService
from tests.adapter.helpers import CUSTOM, EXPOSITION, PODS, FakeExporter
from tests.kube.apiserver import FakeApiServer
from tests.kube.client import api_client, core_v1
from tests.kube.faults import FAST
from tests.kube.objects import make_pod

PODS_ATTRS = Attributes(user=User("system:serviceaccount:kube-system:horizontal-pod-autoscaler"), verb="get",
                        group="custom.metrics.k8s.io", version="v1beta2", resource="pods",
                        subresource="kvscale_vllm_requests_waiting", name="*", namespace="demo")
WAITING = CUSTOM + "/v1beta2/namespaces/llm/pods/vllm-7d9c6-abcde/kvscale_vllm_requests_waiting"


def authorizer(server: FakeApiServer, *, timeout: float = 5.0, ttl: float = 10.0) -> DelegatedAuthorizer:
    return DelegatedAuthorizer(authorization_api=client.AuthorizationV1Api(api_client(server)), timeout=timeout,
                               ttl=ttl)


def review_requests(server: FakeApiServer) -> int:
    return sum(1 for path, _ in server.requests if path.endswith("/subjectaccessreviews"))


async def until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_concurrent_identical_reviews_are_one_call(apiserver: FakeApiServer) -> None:
    apiserver.allowed_users = {PODS_ATTRS.user.name}
    authz = authorizer(apiserver)
    apiserver.pause()
    asked = [asyncio.create_task(authz.allowed(PODS_ATTRS)) for _ in range(20)]
    await until(lambda: review_requests(apiserver) >= 1, "the first review")
    await asyncio.sleep(0.3)  # time for any duplicate to reach the server
    assert review_requests(apiserver) == 1
    apiserver.resume()
    assert await asyncio.wait_for(asyncio.gather(*asked), 20) == [True] * 20
    assert len(apiserver.reviews) == 1
    authz.close()


async def test_hung_review_has_a_deadline_and_is_not_an_allow(apiserver: FakeApiServer) -> None:
    apiserver.allowed_users = {PODS_ATTRS.user.name}
    authz = authorizer(apiserver, timeout=0.5)
    apiserver.pause()
    with pytest.raises(AuthorizationError):
        await asyncio.wait_for(authz.allowed(PODS_ATTRS), 20)
    apiserver.resume()
    assert await authz.allowed(PODS_ATTRS)  # the failure was not cached
    authz.close()


async def test_unreachable_authorizer_is_an_error_answered_500() -> None:
    cfg = client.Configuration()
    cfg.host = "http://127.0.0.1:9"
    cfg.retries = 0
    authz = DelegatedAuthorizer(authorization_api=client.AuthorizationV1Api(client.ApiClient(cfg)))
    with pytest.raises(AuthorizationError):
        await authz.allowed(PODS_ATTRS)
    exporter = FakeExporter()
    await exporter.server.start_server()
    async with aiohttp.ClientSession() as session:
        app = build_app(service=MetricsService(provider=DirectProvider(
            endpoints=StaticEndpoints([exporter.url]), session=session, settings=DirectSettings()),
            pods=load_pod_file(PODS)), security=Security(authenticator=None, authorizer=authz),
            metrics=SelfMetrics(registry=CollectorRegistry()))
        async with TestClient(TestServer(app)) as http:
            resp = await http.get(WAITING)
            assert resp.status == 500
            assert (await resp.json())["reason"] == "InternalError"
    await exporter.server.close()
    authz.close()


async def test_hung_reviews_stall_neither_discovery_nor_answers_already_authorized(
        apiserver: FakeApiServer) -> None:
    """A hung review once stalled the shared thread pool: within 3 s every answer was a 404, system:masters
    included. Here 40 reviews hang while the direct source (a body parsed in a worker thread) keeps refreshing
    through exporter discovery, and a user whose answer is cached keeps getting fresh values."""
    padding = b"".join(b"# padding line %d to push the body over the threaded-parse size\n" % i for i in range(6000))
    exporter = FakeExporter(EXPOSITION + padding)
    await exporter.server.start_server()
    port = exporter.server.port
    assert port is not None
    apiserver.store.put(make_pod("kvscale-exporter-a", namespace="monitoring", ip="127.0.0.1",
                                 labels={"app.kubernetes.io/name": "kvscale-exporter"}))
    discovery = KubeExporterEndpoints(core_v1=core_v1(apiserver), namespace="monitoring",
                                      label_selector="app.kubernetes.io/name=kvscale-exporter", port=port,
                                      timings=FAST, jitter=lambda: 0.0).start()
    apiserver.allowed_users = {"system:anonymous"}
    authz = authorizer(apiserver, timeout=120.0, ttl=600.0)
    hung: list[asyncio.Task[bool]] = []
    async with aiohttp.ClientSession() as session:
        provider = DirectProvider(endpoints=discovery, session=session,
                                  settings=DirectSettings(refresh_interval=0.2, max_age=1.0, timeout=2.0))
        refresh = asyncio.create_task(provider.run())
        app = build_app(service=MetricsService(provider=provider, pods=load_pod_file(PODS)),
                        security=Security(authenticator=None, authorizer=authz),
                        metrics=SelfMetrics(registry=CollectorRegistry()), cache=ResponseCache(ttl=0.2))
        try:
            async with TestClient(TestServer(app)) as http:
                async def value() -> str:
                    resp = await http.get(WAITING)
                    body = await resp.json()
                    return str(body["items"][0]["value"]) if resp.status == 200 else f"HTTP {resp.status}"

                await until(lambda: provider.ready, "the first refresh")
                assert await value() == "5"  # reviewed once, now cached
                apiserver.pause()
                hung.extend(asyncio.create_task(authz.allowed(
                    Attributes(user=User(f"user-{i}"), verb="get", path="/apis"))) for i in range(40))
                await until(lambda: review_requests(apiserver) >= 4, "reviews to hang")
                exporter.body = exporter.body.replace(b'pod="vllm-7d9c6-abcde",model_name="llama-3-8b"} 5',
                                                      b'pod="vllm-7d9c6-abcde",model_name="llama-3-8b"} 7')
                deadline = time.monotonic() + 20
                seen = await value()
                while seen != "7" and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                    seen = await value()
                assert seen == "7", "the direct source stopped refreshing while reviews hung"
                for _ in range(15):  # past max_age several times over: still answered, from fresh reads
                    await asyncio.sleep(0.2)
                    assert await value() == "7"
                assert not any(task.done() for task in hung)
        finally:
            apiserver.resume()
            refresh.cancel()
            for task in hung:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, AuthorizationError):
                await asyncio.gather(refresh, *hung)
            discovery.close()
            authz.close()
            await exporter.server.close()


@pytest.mark.parametrize(("path", "expected"), [
    ("/apis/custom.metrics.k8s.io/v1beta2/namespaces/llm/pods/*/m",
     ("get", "pods", "*", "m", "llm")),
    ("/apis/custom.metrics.k8s.io/v1beta2/namespaces/llm/deployments.apps/vllm/m",
     ("get", "deployments.apps", "vllm", "m", "llm")),
    # kube-apiserver: resource "metrics", name = the metric (custom-metrics-apiserver's namespace route)
    ("/apis/custom.metrics.k8s.io/v1beta2/namespaces/llm/metrics/m", ("get", "metrics", "m", "", "llm")),
    ("/apis/custom.metrics.k8s.io/v1beta1/nodes/node-a/m", ("get", "nodes", "node-a", "m", "")),
    # namespaces/NS/X: X is the resource inside namespace NS, listed (no name)
    ("/apis/external.metrics.k8s.io/v1beta1/namespaces/llm/m", ("list", "m", "", "", "llm")),
    ("/apis/custom.metrics.k8s.io/v1beta2/namespaces/llm", ("get", "namespaces", "llm", "", "llm")),
    ("/apis/custom.metrics.k8s.io/v1beta2/namespaces/llm/status", ("get", "namespaces", "llm", "status", "llm")),
])
def test_review_attributes_are_what_kube_apiserver_builds(path: str, expected: tuple[str, ...]) -> None:
    attrs = request_attributes(path, User("u"))
    assert (attrs.verb, attrs.resource, attrs.name, attrs.subresource, attrs.namespace) == expected
    assert attrs.path is None and attrs.group == path.split("/")[2]


@pytest.mark.parametrize("path", ["/apis", "/apis/custom.metrics.k8s.io", "/apis/custom.metrics.k8s.io/v1beta2",
                                  "/metrics", "/openapi/v2"])
def test_other_paths_are_non_resource_reviews(path: str) -> None:
    attrs = request_attributes(path, User("u"))
    assert (attrs.path, attrs.verb, attrs.resource) == (path, "get", "")
