"""PodWatcher against a fake API server at the HTTP seam, driven by the real ``kubernetes`` client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.contract.kube_events import PodSourceError
from exporter.vllm.kube_targets import PodWatcher, core_v1_api
from exporter.vllm.targets import Target
from tests.conftest import free_port
from tests.exporter.fake_apiserver import FakeApiServer, core_v1, make_pod, status

NODE = "node-a"
Watchers = Callable[..., PodWatcher]


def eventually(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll ``check`` until true; generous, since a loaded CI machine is slow, not wrong."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def urls(watcher: PodWatcher) -> dict[str, str]:
    return {t.pod: t.url for t in watcher.targets()}


@pytest.fixture
def apiserver() -> Iterator[FakeApiServer]:
    server = FakeApiServer().start()
    yield server
    server.stop()


@pytest.fixture
def watchers() -> Iterator[Watchers]:
    started: list[PodWatcher] = []

    def start(server: FakeApiServer, **overrides: Any) -> PodWatcher:
        options: dict[str, Any] = {"node_name": NODE, "label_selector": "app=vllm", "default_port": 8000,
                                   "default_path": "/metrics", "watch_timeout_seconds": 60,
                                   "max_backoff_seconds": 0.2, **overrides}
        watcher = PodWatcher(api=core_v1(server), **options)
        started.append(watcher)
        watcher.start()
        return watcher

    yield start
    for watcher in started:
        watcher.stop(timeout=10)


def _node_pods() -> list[dict[str, Any]]:
    """Pods of every kind the selection must include or leave out."""
    terminating = make_pod("terminating", ip="10.0.0.11")
    terminating["metadata"]["deletionTimestamp"] = "2026-11-24T00:00:00Z"
    return [
        make_pod("annotated", ip="10.0.0.1", gpus=2, annotations={
            "kvscale.io/port": "9000", "kvscale.io/path": "stats", "kvscale.io/scheme": "https"}),
        make_pod("plain", ip="10.0.0.2"),
        make_pod("ipv6", ip="fd00::5"),
        make_pod("pending", phase="Pending"),
        make_pod("no-ip", ip=None),
        make_pod("succeeded", phase="Succeeded"),
        make_pod("other-node", node="node-b", ip="10.0.1.1"),
        make_pod("other-app", labels={"app": "redis"}, ip="10.0.0.9"),
        make_pod("no-labels", labels={}, ip="10.0.0.10"),
        terminating,
    ]


def test_initial_list_selects_running_pods_on_this_node(apiserver: FakeApiServer, watchers: Watchers) -> None:
    for pod in _node_pods():
        apiserver.store.put(pod)
    watcher = watchers(apiserver)
    assert watcher.ready.wait(20)
    assert tuple(watcher.targets()) == (
        Target("demo", "annotated", "https://10.0.0.1:9000/stats", gpus=2.0),
        Target("demo", "ipv6", "http://[fd00::5]:8000/metrics"),
        Target("demo", "plain", "http://10.0.0.2:8000/metrics"),
    )
    path, query = apiserver.requests[0]
    assert path == "/api/v1/pods"
    assert query["fieldSelector"] == "spec.nodeName=node-a"
    assert query["labelSelector"] == "app=vllm"


def test_watch_adds_modifies_and_deletes_targets(apiserver: FakeApiServer, watchers: Watchers) -> None:
    apiserver.store.put(make_pod("a", ip="10.0.0.1"))
    watcher = watchers(apiserver)
    assert watcher.ready.wait(20)
    assert urls(watcher) == {"a": "http://10.0.0.1:8000/metrics"}
    eventually(lambda: apiserver.watch_count() >= 1, "the watch to open")

    apiserver.store.put(make_pod("b", phase="Pending", ip=None))
    apiserver.store.put(make_pod("b", ip="10.0.0.2", gpus=1))
    eventually(lambda: "b" in urls(watcher), "pod b to start running")
    assert {t.pod: t.gpus for t in watcher.targets()} == {"a": None, "b": 1.0}

    apiserver.store.put(make_pod("a", ip="10.0.0.1", annotations={"kvscale.io/port": "9100"}))
    eventually(lambda: urls(watcher).get("a") == "http://10.0.0.1:9100/metrics", "a's new port")

    apiserver.store.put(make_pod("a", ip="10.0.0.1", labels={"app": "other"}))  # leaves the selection
    eventually(lambda: set(urls(watcher)) == {"b"}, "a to leave with its label")
    apiserver.store.put(make_pod("a", ip="10.0.0.3"))  # and comes back
    eventually(lambda: urls(watcher).get("a") == "http://10.0.0.3:8000/metrics", "a to come back")

    apiserver.store.delete("demo", "b")
    eventually(lambda: set(urls(watcher)) == {"a"}, "b to be deleted")
    assert watcher.relists == 1 and watcher.failures == 0  # all of it came through the one watch
    assert watcher.resource_version == str(apiserver.store.version)


def test_expired_resource_version_relists_and_converges(apiserver: FakeApiServer, watchers: Watchers) -> None:
    apiserver.store.put(make_pod("a", ip="10.0.0.1"))
    apiserver.store.put(make_pod("b", ip="10.0.0.2"))
    watcher = watchers(apiserver)
    assert watcher.ready.wait(20)
    eventually(lambda: apiserver.watch_count() == 1, "the watch to open")
    # Hold the watcher's next watch request while history it has not seen is compacted away.
    apiserver.pause()
    apiserver.close_watches()
    eventually(lambda: apiserver.watch_count() == 2, "the watch to be re-opened")
    apiserver.store.delete("demo", "a")
    apiserver.store.put(make_pod("c", ip="10.0.0.3"))
    apiserver.store.compact()
    apiserver.resume()

    eventually(lambda: set(urls(watcher)) == {"b", "c"}, "the relist after 410 Gone")
    assert watcher.relists == 2 and watcher.failures == 0
    # The watch after the relist starts from the relisted version and still delivers changes.
    apiserver.store.put(make_pod("d", ip="10.0.0.4"))
    eventually(lambda: set(urls(watcher)) == {"b", "c", "d"}, "d through the new watch")


def test_bookmark_moves_the_version_past_filtered_changes(apiserver: FakeApiServer, watchers: Watchers) -> None:
    apiserver.store.put(make_pod("a", ip="10.0.0.1"))
    watcher = watchers(apiserver)
    assert watcher.ready.wait(20)
    eventually(lambda: apiserver.watch_count() == 1, "the watch to open")
    for i in range(3):  # another node's churn: never sent to this watcher
        apiserver.store.put(make_pod(f"elsewhere-{i}", node="node-b"))
    marker = apiserver.store.bookmark()
    eventually(lambda: watcher.resource_version == str(marker), "the bookmark")
    apiserver.store.compact()
    apiserver.close_watches()
    eventually(lambda: apiserver.watch_count() == 2, "the watch to be re-opened")
    apiserver.store.put(make_pod("b", ip="10.0.0.2"))
    eventually(lambda: set(urls(watcher)) == {"a", "b"}, "b through the resumed watch")
    assert watcher.relists == 1  # resumed from the bookmark: no 410, no relist
    assert apiserver.requests[-1][1]["resourceVersion"] == str(marker)


def test_api_server_down_at_start_is_retried_until_ready(watchers: Watchers) -> None:
    server = FakeApiServer(port=free_port())
    server.store.put(make_pod("a", ip="10.0.0.1"))
    jitters: list[float] = []

    def jitter() -> float:
        jitters.append(0.0)
        return 0.0

    watcher = watchers(server, jitter=jitter)
    try:
        eventually(lambda: watcher.failures >= 3, "repeated failed attempts")
        assert not watcher.ready.is_set()
        assert watcher.targets() == ()
        assert len(jitters) >= 3  # each failure waited a backoff delay before the next try
        server.start()
        assert watcher.ready.wait(20)
        assert urls(watcher) == {"a": "http://10.0.0.1:8000/metrics"}
    finally:
        server.stop()


def test_api_server_going_away_keeps_the_last_targets(apiserver: FakeApiServer, watchers: Watchers) -> None:
    apiserver.store.put(make_pod("a", ip="10.0.0.1"))
    apiserver.store.put(make_pod("b", ip="10.0.0.2"))
    watcher = watchers(apiserver)
    assert watcher.ready.wait(20)
    before = tuple(watcher.targets())
    apiserver.stop()
    eventually(lambda: watcher.failures >= 2, "failed attempts while the API server is away")
    assert tuple(watcher.targets()) == before
    # Changes made while it was away arrive once it is back.
    apiserver.store.delete("demo", "a")
    apiserver.store.put(make_pod("c", ip="10.0.0.3"))
    apiserver.start()
    eventually(lambda: set(urls(watcher)) == {"b", "c"}, "the relist once the API server is back")
    assert watcher.relists >= 2


@pytest.mark.parametrize("failure", [
    status(403, "Forbidden", 'pods is forbidden: User "system:serviceaccount:monitoring:kvscale" cannot list'),
    status(500, "InternalError", "etcdserver: request timed out"),
])
def test_error_status_is_retried(apiserver: FakeApiServer, watchers: Watchers, failure: dict[str, Any]) -> None:
    apiserver.store.put(make_pod("a", ip="10.0.0.1"))
    apiserver.injected.extend([failure, failure])
    watcher = watchers(apiserver)
    assert watcher.ready.wait(20)
    assert watcher.failures == 2
    assert urls(watcher) == {"a": "http://10.0.0.1:8000/metrics"}


def test_hung_api_server_times_out_and_is_retried(apiserver: FakeApiServer, watchers: Watchers) -> None:
    apiserver.store.put(make_pod("a", ip="10.0.0.1"))
    apiserver.pause()
    watcher = watchers(apiserver, request_timeout_seconds=0.3)
    eventually(lambda: watcher.failures >= 2, "list requests to time out")
    assert not watcher.ready.is_set()
    apiserver.resume()
    assert watcher.ready.wait(20)
    assert set(urls(watcher)) == {"a"}


def test_stop_cuts_the_open_watch(apiserver: FakeApiServer, watchers: Watchers) -> None:
    watcher = watchers(apiserver, watch_timeout_seconds=600)
    assert watcher.ready.wait(20)
    eventually(lambda: apiserver.watch_count() == 1, "the watch to open")
    watcher.stop(timeout=10)
    assert not watcher.is_alive()
    assert watcher.failures == 0  # being stopped is not a failure


def _no_cluster(monkeypatch: pytest.MonkeyPatch, kubeconfig: Path) -> None:
    """Outside a cluster, with ``kubeconfig`` as the default kubeconfig location."""
    from kubernetes import client
    from kubernetes.config import kube_config

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    # The client reads $KUBECONFIG once, at import; and loading a config replaces its global
    # default Configuration, which must not leak into other tests.
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    monkeypatch.setattr(client.Configuration, "_default", client.Configuration._default)


def test_core_v1_api_falls_back_to_the_kubeconfig(apiserver: FakeApiServer, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    kubeconfig = {
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "fake", "cluster": {"server": apiserver.url}}],
        "users": [{"name": "me", "user": {"token": "dummy"}}],
        "contexts": [{"name": "test", "context": {"cluster": "fake", "user": "me"}}],
    }
    (tmp_path / "config").write_text(yaml.safe_dump(kubeconfig))
    _no_cluster(monkeypatch, tmp_path / "config")
    apiserver.store.put(make_pod("a"))
    pods = core_v1_api().list_pod_for_all_namespaces()
    assert [p.metadata.name for p in pods.items] == ["a"]


def test_core_v1_api_without_any_credentials_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_cluster(monkeypatch, tmp_path / "missing")
    with pytest.raises(PodSourceError, match="kubeconfig"):
        core_v1_api()
