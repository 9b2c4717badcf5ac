"""PodWatcher (the exporter's vLLM targets) against the fake API server, driven by the real ``kubernetes`` client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from exporter.app import serve
from exporter.contract.kubewatch import WatchTimings
from exporter.settings import build
from exporter.vllm.kube_targets import PodWatcher
from exporter.vllm.targets import Target
from tests.conftest import free_port
from tests.kube.apiserver import FakeApiServer
from tests.kube.client import core_v1
from tests.kube.faults import FAST, SCENARIOS, Start, Subject, eventually
from tests.kube.objects import make_pod, status

NODE = "node-a"
Watchers = Callable[..., PodWatcher]


def urls(watcher: PodWatcher) -> dict[str, str]:
    return {t.pod: t.url for t in watcher.targets()}


@pytest.fixture
def watchers() -> Iterator[Watchers]:
    started: list[PodWatcher] = []

    def start(server: FakeApiServer, timings: WatchTimings = FAST, **overrides: Any) -> PodWatcher:
        options: dict[str, Any] = {"node_name": NODE, "label_selector": "app=vllm", "default_port": 8000,
                                   "default_path": "/metrics", "jitter": lambda: 0.0, **overrides}
        watcher = PodWatcher(core_v1=core_v1(server), timings=timings, **options)
        started.append(watcher)
        return watcher.start()

    yield start
    for watcher in started:
        watcher.close()


@pytest.fixture
def as_subject(watchers: Watchers) -> Start:
    def start(server: FakeApiServer, timings: WatchTimings) -> Subject:
        watcher = watchers(server, timings)
        return Subject(watcher.watch, lambda: {t.pod for t in watcher.targets()})

    return start


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_targets_survive_watch_faults(apiserver: FakeApiServer, as_subject: Start,
                                      scenario: Callable[[FakeApiServer, Start], None]) -> None:
    scenario(apiserver, as_subject)


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
    assert not watcher.ready or watcher.targets()  # never "ready" with an unpublished view
    assert watcher.watch.wait_ready(20) and watcher.ready
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
    assert watcher.watch.wait_ready(20)
    assert urls(watcher) == {"a": "http://10.0.0.1:8000/metrics"}
    eventually(lambda: apiserver.open_watches() == 1, "the watch to open")

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

    apiserver.store.put(make_pod("b", ip="10.0.0.2", phase="Succeeded"))  # finished: no longer a target
    eventually(lambda: set(urls(watcher)) == {"a"}, "b to finish")
    apiserver.store.delete("demo", "b")
    eventually(lambda: watcher.watch.resource_version == str(apiserver.store.version), "b's deletion")
    assert set(urls(watcher)) == {"a"}
    assert watcher.watch.relists == 1 and watcher.watch.failures == 0  # all of it came through the one watch


def test_bookmark_moves_the_version_past_filtered_changes(apiserver: FakeApiServer, watchers: Watchers) -> None:
    apiserver.store.put(make_pod("a", ip="10.0.0.1"))
    watcher = watchers(apiserver)
    assert watcher.watch.wait_ready(20)
    eventually(lambda: apiserver.open_watches() == 1, "the watch to open")
    for i in range(3):  # another node's churn: never sent to this watcher
        apiserver.store.put(make_pod(f"elsewhere-{i}", node="node-b"))
    marker = apiserver.store.bookmark()
    eventually(lambda: watcher.watch.resource_version == str(marker), "the bookmark")
    apiserver.store.compact()
    watches = apiserver.watch_count()
    apiserver.close_watches()
    eventually(lambda: apiserver.watch_count() == watches + 1, "the watch to be re-opened")
    apiserver.store.put(make_pod("b", ip="10.0.0.2"))
    eventually(lambda: set(urls(watcher)) == {"a", "b"}, "b through the resumed watch")
    assert watcher.watch.relists == 1  # resumed from the bookmark: no 410, no relist
    assert apiserver.requests[-1][1]["resourceVersion"] == str(marker)


@pytest.mark.parametrize("failure", [
    status(403, "Forbidden", 'pods is forbidden: User "system:serviceaccount:monitoring:kvscale" cannot list'),
    status(500, "InternalError", "etcdserver: request timed out"),
])
def test_error_status_on_the_first_list_is_retried(apiserver: FakeApiServer, watchers: Watchers,
                                                   failure: dict[str, Any]) -> None:
    apiserver.store.put(make_pod("a", ip="10.0.0.1"))
    apiserver.injected.extend([failure, failure])
    watcher = watchers(apiserver)
    assert watcher.watch.wait_ready(20)
    assert watcher.watch.failures == 2
    assert urls(watcher) == {"a": "http://10.0.0.1:8000/metrics"}


async def test_exporter_readyz_waits_for_the_pod_list_and_shutdown_stops_the_watch(
        apiserver: FakeApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes.config import kube_config

    kubeconfig = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
                  "clusters": [{"name": "fake", "cluster": {"server": apiserver.url}}],
                  "users": [{"name": "u", "user": {"token": "t"}}],
                  "contexts": [{"name": "c", "context": {"cluster": "fake", "user": "u"}}]}
    (tmp_path / "config").write_text(json.dumps(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(tmp_path / "config"))
    apiserver.failing_for["pods"] = status(403, "Forbidden", "pods is forbidden")
    listen = f"127.0.0.1:{free_port()}"
    settings = build([("test", {"listen": listen, "kubernetes": "on", "node_name": NODE, "nvml": "off",
                                "pod_selector": "app=vllm", "interval": 0.2, "scrape_timeout": 0.1})])
    before = set(threading.enumerate())
    started = asyncio.Event()
    task = asyncio.create_task(serve(settings, started=started))
    try:
        await asyncio.wait_for(started.wait(), 20)
        async with aiohttp.ClientSession() as session:
            async def readyz() -> int:
                async with session.get(f"http://{listen}/readyz") as resp:
                    return resp.status

            deadline = asyncio.get_running_loop().time() + 20
            while apiserver.list_count() < 2:  # refused at least twice, collecting all the while
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
            assert await readyz() == 503
            apiserver.failing_for.clear()
            while await readyz() != 200:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
            assert [q["fieldSelector"] for _, q in apiserver.requests[:1]] == [f"spec.nodeName={NODE}"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert not [t for t in set(threading.enumerate()) - before if t.name == "kubewatch-pods"]  # closed with it
