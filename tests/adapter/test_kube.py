"""Cluster-facing parts against the fake API server, with the real ``kubernetes`` client doing the requests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator

import pytest
import trustme
from kubernetes import client

from adapter.auth import AuthConfigError, User, from_configmap, read_cluster_auth
from adapter.authz import Attributes, DelegatedAuthorizer, review_body
from adapter.endpoints import EndpointError, url_from_pod
from adapter.kube import KubeExporterEndpoints, KubePodInventory
from exporter.contract.kubewatch import WatchTimings
from tests.kube.apiserver import FakeApiServer
from tests.kube.client import api_client, core_v1
from tests.kube.faults import FAST, SCENARIOS, Start, Subject, eventually
from tests.kube.objects import make_configmap, make_pod, status

EXPORTERS = {"app.kubernetes.io/name": "kvscale-exporter"}
Closers = list[Callable[[], None]]


@pytest.fixture
def closers() -> Iterator[Closers]:
    started: Closers = []
    yield started
    for close in started:
        close()


def inventory(server: FakeApiServer, closers: Closers, timings: WatchTimings = FAST) -> KubePodInventory:
    pods = KubePodInventory(core_v1=core_v1(server), timings=timings, jitter=lambda: 0.0)
    closers.append(pods.close)
    return pods.start()


def names(pods: KubePodInventory, namespace: str = "demo") -> list[str]:
    return [p.name for p in pods.pods(namespace)]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_pod_inventory_survives_watch_faults(apiserver: FakeApiServer, closers: Closers,
                                             scenario: Callable[[FakeApiServer, Start], None]) -> None:
    def start(server: FakeApiServer, timings: WatchTimings) -> Subject:
        pods = inventory(server, closers, timings)
        return Subject(pods.watch, lambda: {p.name for ns in ("demo", "llm") for p in pods.pods(ns)})

    scenario(apiserver, start)


def test_inventory_holds_active_pods_by_namespace_with_their_workload(apiserver: FakeApiServer,
                                                                     closers: Closers) -> None:
    apiserver.store.put(make_pod("vllm-7d9c6-abcde", namespace="llm", owner=("ReplicaSet", "vllm-7d9c6"),
                                 labels={"app": "vllm", "pod-template-hash": "7d9c6"}))
    apiserver.store.put(make_pod("done", namespace="llm", phase="Succeeded"))
    apiserver.store.put(make_pod("other", namespace="demo"))
    pods = inventory(apiserver, closers)
    assert pods.generation == 0 and not pods.ready and pods.pods("llm") == ()
    assert pods.watch.wait_ready(20) and pods.ready
    [vllm] = pods.pods("llm")
    assert (vllm.name, vllm.workload, vllm.labels["app"]) == ("vllm-7d9c6-abcde", ("Deployment", "vllm"), "vllm")
    assert names(pods) == ["other"]
    assert apiserver.requests[0] == ("/api/v1/pods", {"limit": "500"})  # every namespace, every label

    listed = pods.generation
    deleting = make_pod("vllm-7d9c6-abcde", namespace="llm")
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    apiserver.store.put(deleting)
    eventually(lambda: pods.pods("llm") == (), "the deleting pod to leave")
    assert pods.generation > listed  # cached answers computed before the change are no longer valid
    apiserver.store.put(make_pod("new", namespace="demo"))
    eventually(lambda: names(pods) == ["new", "other"], "a new pod through the watch")


def test_a_large_inventory_is_listed_in_pages(apiserver: FakeApiServer, closers: Closers) -> None:
    for i in range(12):
        apiserver.store.put(make_pod(f"p{i:02d}"))
    timings = WatchTimings(**{**FAST.__dict__, "page_size": 5})
    pods = inventory(apiserver, closers, timings)
    assert pods.watch.wait_ready(20)
    assert names(pods) == [f"p{i:02d}" for i in range(12)]
    assert [q.get("limit") for _, q in apiserver.requests[:3]] == ["5", "5", "5"]
    assert apiserver.list_count() == 3


async def test_exporter_discovery_watches_ready_pods(apiserver: FakeApiServer, closers: Closers) -> None:
    apiserver.store.put(make_pod("exp-1", namespace="monitoring", labels=EXPORTERS, ip="10.0.0.1"))
    apiserver.store.put(make_pod("exp-2", namespace="monitoring", labels=EXPORTERS, ip="10.0.0.2", ready=False))
    apiserver.store.put(make_pod("exp-3", namespace="monitoring", labels={"app": "other"}, ip="10.0.0.3"))
    apiserver.store.put(make_pod("exp-4", namespace="monitoring", labels=EXPORTERS, ip="fd00::4"))
    apiserver.store.put(make_pod("exp-5", namespace="elsewhere", labels=EXPORTERS, ip="10.0.0.5"))
    discovery = KubeExporterEndpoints(core_v1=core_v1(apiserver), namespace="monitoring",
                                      label_selector="app.kubernetes.io/name=kvscale-exporter", port=9400,
                                      timings=FAST, jitter=lambda: 0.0)
    closers.append(discovery.close)
    discovery.start()
    assert await discovery.watch.until_ready(20)
    assert await discovery.endpoints() == ("http://10.0.0.1:9400/metrics", "http://[fd00::4]:9400/metrics")
    assert apiserver.requests[0][0] == "/api/v1/namespaces/monitoring/pods"
    apiserver.store.put(make_pod("exp-2", namespace="monitoring", labels=EXPORTERS, ip="10.0.0.2"))  # now ready
    apiserver.store.delete("monitoring", "exp-1")
    deadline = asyncio.get_running_loop().time() + 20
    while await discovery.endpoints() != ("http://10.0.0.2:9400/metrics", "http://[fd00::4]:9400/metrics"):
        assert asyncio.get_running_loop().time() < deadline, await discovery.endpoints()
        await asyncio.sleep(0.02)


async def test_exporter_discovery_before_its_first_list_is_an_endpoint_error(closers: Closers) -> None:
    down = FakeApiServer()  # never started: connections are refused
    discovery = KubeExporterEndpoints(core_v1=core_v1(down), namespace="m", label_selector="", port=1,
                                      timings=FAST, jitter=lambda: 0.0)
    closers.append(discovery.close)
    discovery.start()
    eventually(lambda: discovery.watch.failures >= 1, "a refused list")
    with pytest.raises(EndpointError, match=r"watch of pods in m: no successful list yet \(last error: "):
        await discovery.endpoints()


@pytest.mark.parametrize(("phase", "ready", "ip", "url"), [
    ("Running", True, "1.2.3.4", "http://1.2.3.4:9400/metrics"),
    ("Running", True, "fd00::1", "http://[fd00::1]:9400/metrics"),
    ("Pending", True, "1.2.3.4", None), ("Running", False, "1.2.3.4", None), ("Running", True, None, None),
])
def test_url_from_pod(phase: str, ready: bool, ip: str | None, url: str | None) -> None:
    assert url_from_pod(make_pod("p", phase=phase, ready=ready, ip=ip), 9400) == url


async def test_requestheader_settings_from_the_configmap(apiserver: FakeApiServer) -> None:
    ca = trustme.CA().cert_pem.bytes().decode()
    apiserver.store.put(make_configmap("extension-apiserver-authentication", "kube-system", {
        "requestheader-client-ca-file": ca, "client-ca-file": ca,
        "requestheader-allowed-names": json.dumps(["front-proxy-client"]),
        "requestheader-username-headers": json.dumps(["X-Remote-User"]),
        "requestheader-group-headers": json.dumps(["X-Remote-Group"]),
        "requestheader-extra-headers-prefix": json.dumps(["X-Remote-Extra-"])}))
    auth = await asyncio.to_thread(read_cluster_auth, core_v1(apiserver))
    assert auth.requestheader is not None
    assert auth.requestheader.allowed_names == ("front-proxy-client",)
    assert auth.client_ca_pem == ca.encode()


async def test_configmap_forbidden_says_which_role_is_missing(apiserver: FakeApiServer) -> None:
    apiserver.injected.append(status(403, "Forbidden", 'configmaps "extension-apiserver-authentication" is forbidden'))
    with pytest.raises(AuthConfigError, match="extension-apiserver-authentication-reader"):
        await asyncio.to_thread(read_cluster_auth, core_v1(apiserver))


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


async def test_delegated_authorization_allows_denies_and_caches(apiserver: FakeApiServer) -> None:
    apiserver.allowed_users = {PODS_ATTRS.user.name}
    now = [0.0]
    authz = DelegatedAuthorizer(authorization_api=client.AuthorizationV1Api(api_client(apiserver)),
                                monotonic=lambda: now[0])
    assert await authz.allowed(PODS_ATTRS)
    assert await authz.allowed(PODS_ATTRS)
    assert len(apiserver.reviews) == 1  # cached
    stranger = Attributes(user=User("mallory"), verb="get", path="/apis")
    assert not await authz.allowed(stranger)
    now[0] = 11.0
    apiserver.allowed_users = set()
    assert not await authz.allowed(PODS_ATTRS)  # the 10 s cache expired: asked again
    assert len(apiserver.reviews) == 3
    assert await authz.allowed(Attributes(user=User("root", ("system:masters",)), verb="get", path="/apis"))
    assert len(apiserver.reviews) == 3
