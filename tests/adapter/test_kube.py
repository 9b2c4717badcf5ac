"""Cluster-facing parts against a fake API server, with the real ``kubernetes`` client doing the requests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import pytest
import trustme
from kubernetes import client, watch

from adapter.auth import AuthConfigError, User, from_configmap, read_cluster_auth
from adapter.authz import Attributes, DelegatedAuthorizer, review_body
from adapter.endpoints import EndpointError, KubeEndpoints, urls_from_pods
from adapter.kube import KubePodCache
from tests.adapter.fake_kube import FakeKube, pod


@pytest.fixture
async def kube() -> AsyncIterator[FakeKube]:
    fake = FakeKube()
    await fake.server.start_server()
    yield fake
    await fake.close()


async def until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_pod_cache_lists_watches_and_relists_after_gone(kube: FakeKube) -> None:
    kube.add(pod("vllm-a", labels={"app": "vllm"}))
    cache = KubePodCache(core_api=client.CoreV1Api(kube.api_client()), watch_factory=watch.Watch, retry_delay=0.05)
    cache.start()
    try:
        await until(cache.synced.is_set)
        assert [p.name for p in cache.pods("demo")] == ["vllm-a"]
        await kube.emit("ADDED", pod("vllm-b", labels={"app": "vllm"}))
        await until(lambda: len(cache.pods("demo")) == 2)
        deleting = pod("vllm-a", labels={"app": "vllm"})
        deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        await kube.emit("MODIFIED", deleting)
        await until(lambda: [p.name for p in cache.pods("demo")] == ["vllm-b"])
        lists = kube.lists
        kube.add(pod("vllm-c"))  # changed while the watch was broken: only a relist sees it
        await kube.gone()
        await until(lambda: kube.lists > lists and len(cache.pods("demo")) == 2)
        assert sorted(p.name for p in cache.pods("demo")) == ["vllm-b", "vllm-c"]
        await kube.emit("DELETED", pod("vllm-b"))
        await until(lambda: [p.name for p in cache.pods("demo")] == ["vllm-c"])
    finally:
        cache.stop()


async def test_exporter_discovery_lists_ready_pods(kube: FakeKube) -> None:
    sel = {"app.kubernetes.io/name": "kvscale-exporter"}
    kube.add(pod("exp-1", "monitoring", sel, ip="10.0.0.1"))
    kube.add(pod("exp-2", "monitoring", sel, ip="10.0.0.2", ready=False))
    kube.add(pod("exp-3", "monitoring", {"app": "other"}, ip="10.0.0.3"))
    kube.add(pod("exp-4", "monitoring", sel, ip="fd00::4"))
    endpoints = KubeEndpoints(core_api=client.CoreV1Api(kube.api_client()), namespace="monitoring",
                              label_selector="app.kubernetes.io/name=kvscale-exporter", port=9400)
    assert await endpoints.endpoints() == ["http://10.0.0.1:9400/metrics", "http://[fd00::4]:9400/metrics"]


async def test_exporter_discovery_failure_is_an_endpoint_error() -> None:
    cfg = client.Configuration()
    cfg.host = "http://127.0.0.1:9"  # nothing listens on the discard port
    cfg.retries = 0
    endpoints = KubeEndpoints(core_api=client.CoreV1Api(client.ApiClient(cfg)), namespace="m", label_selector="",
                              port=1)
    with pytest.raises(EndpointError, match="listing exporter pods"):
        await endpoints.endpoints()


@pytest.mark.parametrize(("phase", "ready", "ip", "count"), [
    ("Running", True, "1.2.3.4", 1), ("Pending", True, "1.2.3.4", 0), ("Running", False, "1.2.3.4", 0),
    ("Running", True, "", 0),
])
def test_urls_from_pods(phase: str, ready: bool, ip: str, count: int) -> None:
    assert len(urls_from_pods([pod("p", phase=phase, ready=ready, ip=ip)], 9400)) == count


async def test_requestheader_settings_from_the_configmap(kube: FakeKube) -> None:
    ca = trustme.CA().cert_pem.bytes().decode()
    kube.configmap = {"requestheader-client-ca-file": ca, "client-ca-file": ca,
                      "requestheader-allowed-names": json.dumps(["front-proxy-client"]),
                      "requestheader-username-headers": json.dumps(["X-Remote-User"]),
                      "requestheader-group-headers": json.dumps(["X-Remote-Group"]),
                      "requestheader-extra-headers-prefix": json.dumps(["X-Remote-Extra-"])}
    auth = await asyncio.to_thread(read_cluster_auth, client.CoreV1Api(kube.api_client()))
    assert auth.requestheader is not None
    assert auth.requestheader.allowed_names == ("front-proxy-client",)
    assert auth.client_ca_pem == ca.encode()


async def test_configmap_forbidden_says_which_role_is_missing(kube: FakeKube) -> None:
    with pytest.raises(AuthConfigError, match="extension-apiserver-authentication-reader"):
        await asyncio.to_thread(read_cluster_auth, client.CoreV1Api(kube.api_client()))


@pytest.mark.parametrize(("data", "needle"), [
    ({"requestheader-client-ca-file": "x", "requestheader-allowed-names": "front-proxy"}, "JSON array"),
    ({"requestheader-client-ca-file": "x", "requestheader-allowed-names": "[1]"}, "strings"),
])
def test_configmap_errors(data: dict[str, str], needle: str) -> None:
    with pytest.raises(AuthConfigError, match=needle):
        from_configmap(data)


def test_configmap_without_requestheader() -> None:
    assert from_configmap({}).requestheader is None


PODS_ATTRS = Attributes(user=User("system:serviceaccount:kube-system:horizontal-pod-autoscaler", ("system:sa",)),
                        verb="get", group="custom.metrics.k8s.io", version="v1beta2", resource="pods",
                        subresource="kvscale_vllm_requests_waiting", name="*", namespace="demo")


def test_review_body_maps_a_pods_request() -> None:
    spec = review_body(PODS_ATTRS)["spec"]
    assert spec["resourceAttributes"] == {"namespace": "demo", "verb": "get", "group": "custom.metrics.k8s.io",
                                          "version": "v1beta2", "resource": "pods",
                                          "subresource": "kvscale_vllm_requests_waiting", "name": "*"}
    assert spec["user"] == PODS_ATTRS.user.name


async def test_delegated_authorization_allows_denies_and_caches(kube: FakeKube) -> None:
    kube.allowed_users = {PODS_ATTRS.user.name}
    now = [0.0]
    authz = DelegatedAuthorizer(authorization_api=client.AuthorizationV1Api(kube.api_client()),
                                monotonic=lambda: now[0])
    assert await authz.allowed(PODS_ATTRS)
    assert await authz.allowed(PODS_ATTRS)
    assert len(kube.reviews) == 1  # cached
    stranger = Attributes(user=User("mallory"), verb="get", path="/apis")
    assert not await authz.allowed(stranger)
    now[0] = 11.0
    kube.allowed_users = set()
    assert not await authz.allowed(PODS_ATTRS)  # the 10 s cache expired: asked again
    assert len(kube.reviews) == 3
    assert await authz.allowed(Attributes(user=User("root", ("system:masters",)), verb="get", path="/apis"))
    assert len(kube.reviews) == 3


async def test_unreachable_authorizer_denies() -> None:
    cfg = client.Configuration()
    cfg.host = "http://127.0.0.1:9"
    cfg.retries = 0
    authz = DelegatedAuthorizer(authorization_api=client.AuthorizationV1Api(client.ApiClient(cfg)))
    assert not await authz.allowed(PODS_ATTRS)
