"""The shared list+watch beyond pods and its setup: any resource, readiness, status, the client's configuration.

The faults every user must survive are in tests.kube.faults, run for the exporter's targets
(tests/exporter/vllm/test_kube_targets.py) and the adapter's watches (tests/adapter/test_kube.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from exporter.contract.kube_events import KubeSourceError
from exporter.contract.kubewatch import KubeWatch, Resource, api_client, pods
from tests.kube import client as fake
from tests.kube.apiserver import FakeApiServer
from tests.kube.faults import FAST, eventually
from tests.kube.objects import make_pod, make_resource_slice

Slices = KubeWatch[int, dict[str, int]]


def devices(obj: dict[str, Any]) -> int:
    return len(obj["spec"]["devices"])


def by_name(items: Mapping[str, int]) -> dict[str, int]:
    return {key.removeprefix("uid-"): count for key, count in items.items()}


@pytest.fixture
def slices(apiserver: FakeApiServer) -> Iterator[Slices]:
    resource = Resource("resourceslices", client.ResourceV1Api(fake.api_client(apiserver)).list_resource_slice)
    watch = KubeWatch(resource=resource, convert=devices, view=by_name, field_selector="spec.nodeName=node-a",
                      timings=FAST, jitter=lambda: 0.0)
    yield watch
    watch.stop()


async def test_a_cluster_scoped_resource_is_watched_like_pods(apiserver: FakeApiServer, slices: Slices) -> None:
    apiserver.store.put(make_resource_slice("node-a-gpu", node="node-a", devices=8))
    apiserver.store.put(make_resource_slice("node-b-gpu", node="node-b", devices=8))
    assert slices.view() == {} and not slices.ready
    assert "resourceslices in all namespaces (spec.nodeName=node-a): no successful list yet" in slices.status()
    slices.start()
    assert await slices.until_ready(20)
    assert slices.view() == {"node-a-gpu": 8}
    assert slices.status() == "watch of resourceslices in all namespaces (spec.nodeName=node-a): ready"
    assert apiserver.requests[0][0] == "/apis/resource.k8s.io/v1/resourceslices"
    apiserver.store.put(make_resource_slice("node-a-gpu", node="node-a", devices=7))  # a device went away
    eventually(lambda: slices.view() == {"node-a-gpu": 7}, "the slice's change")
    apiserver.store.delete("", "node-a-gpu", resource="resourceslices")
    eventually(lambda: slices.view() == {}, "the slice's deletion")
    assert slices.generation == 3 and slices.relists == 1


def test_a_cluster_scoped_resource_has_no_namespace(apiserver: FakeApiServer) -> None:
    resource = Resource("resourceslices", client.ResourceV1Api(fake.api_client(apiserver)).list_resource_slice)
    with pytest.raises(KubeSourceError, match="cluster-scoped"):
        KubeWatch(resource=resource, convert=devices, view=by_name, namespace="demo")


def test_a_namespaced_watch_asks_for_its_namespace_only(apiserver: FakeApiServer) -> None:
    apiserver.store.put(make_pod("a", namespace="demo"))
    apiserver.store.put(make_pod("b", namespace="other"))
    watch = KubeWatch(resource=pods(fake.core_v1(apiserver)), convert=lambda o: o["metadata"]["name"],
                      view=lambda items: sorted(items.values()), namespace="other", label_selector="app=vllm",
                      timings=FAST).start()
    try:
        assert watch.wait_ready(20)
        assert watch.view() == ["b"]
        eventually(lambda: apiserver.open_watches() == 1, "the watch to open")
        path, query = apiserver.requests[-1]
        assert path == "/api/v1/namespaces/other/pods"
        assert (query["watch"], query["labelSelector"], query["allowWatchBookmarks"]) == ("true", "app=vllm", "true")
        assert 30 <= int(query["timeoutSeconds"]) <= 60  # jittered up to twice the configured watch
    finally:
        assert watch.stop()


def test_stop_before_start_and_twice_is_harmless(apiserver: FakeApiServer) -> None:
    watch = KubeWatch(resource=pods(fake.core_v1(apiserver)), convert=lambda o: o, view=dict, timings=FAST)
    assert watch.stop(timeout=1)
    assert watch.stop(timeout=1)


def _no_cluster(monkeypatch: pytest.MonkeyPatch, kubeconfig: Path) -> None:
    """Outside a cluster, with ``kubeconfig`` as the default kubeconfig location."""
    from kubernetes.config import kube_config

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    # The client reads $KUBECONFIG once, at import.
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))


def _kubeconfig(path: Path, server: FakeApiServer) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "fake", "cluster": {"server": server.url}}],
        "users": [{"name": "me", "user": {"token": "dummy"}}],
        "contexts": [{"name": "test", "context": {"cluster": "fake", "user": "me"}}],
    }))
    return path


def test_api_client_falls_back_to_the_default_kubeconfig(apiserver: FakeApiServer, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _no_cluster(monkeypatch, _kubeconfig(tmp_path / "config", apiserver))
    apiserver.store.put(make_pod("a"))
    found = client.CoreV1Api(api_client()).list_pod_for_all_namespaces()
    assert [p.metadata.name for p in found.items if p.metadata] == ["a"]


def test_api_client_from_a_given_kubeconfig(apiserver: FakeApiServer, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _no_cluster(monkeypatch, tmp_path / "missing")
    config = _kubeconfig(tmp_path / "given", apiserver)
    apiserver.store.put(make_pod("a"))
    found = client.CoreV1Api(api_client(str(config))).list_pod_for_all_namespaces()
    assert [p.metadata.name for p in found.items if p.metadata] == ["a"]
    assert apiserver.requests  # the request went to the fake, not to a default configuration


def test_api_client_without_any_credentials_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_cluster(monkeypatch, tmp_path / "missing")
    with pytest.raises(KubeSourceError, match="kubeconfig"):
        api_client()
