"""The fake API server is faithful where kvscale relies on it: it really filters, pages, expires and fails."""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.kube.apiserver import FakeApiServer
from tests.kube.client import api_client, core_v1
from tests.kube.objects import make_configmap, make_pod, make_resource_slice, status
from tests.kube.selectors import Requirement, SelectorError, parse_label_selector, translate


@pytest.mark.parametrize(("labels", "fields", "expected"), [
    ("app=vllm", "", {"a", "b"}),
    ("app==vllm,tier!=batch", "", {"a"}),
    ("app in (vllm, sglang)", "spec.nodeName=node-a", {"a", "c"}),
    ("app notin (vllm)", "", {"c", "d"}),
    ("tier", "", {"b"}),
    ("!tier,app", "status.phase!=Pending", {"a", "c"}),
    ("", "spec.nodeName=node-b", {"b"}),
    ("kvscale.io/scrape=true", "", {"c"}),
])
def test_fake_api_server_really_filters(apiserver: FakeApiServer, labels: str, fields: str,
                                        expected: set[str]) -> None:
    apiserver.store.put(make_pod("a"))
    apiserver.store.put(make_pod("b", node="node-b", labels={"app": "vllm", "tier": "batch"}))
    apiserver.store.put(make_pod("c", labels={"app": "sglang", "kvscale.io/scrape": "true"}))
    apiserver.store.put(make_pod("d", labels={}, phase="Pending"))
    pods = core_v1(apiserver).list_namespaced_pod("demo", label_selector=labels, field_selector=fields)
    assert {p.metadata.name for p in pods.items} == expected
    assert pods.metadata.resource_version == str(apiserver.store.version)


def test_fake_api_server_rejects_unsupported_fields_like_the_real_one(apiserver: FakeApiServer) -> None:
    with pytest.raises(ApiException) as caught:
        core_v1(apiserver).list_pod_for_all_namespaces(field_selector="spec.schedulerName=x")
    assert caught.value.status == 400


def test_namespaced_list_sees_only_its_namespace(apiserver: FakeApiServer) -> None:
    apiserver.store.put(make_pod("a", namespace="demo"))
    apiserver.store.put(make_pod("b", namespace="other"))
    api = core_v1(apiserver)
    assert [p.metadata.name for p in api.list_namespaced_pod("other").items] == ["b"]
    assert sorted(p.metadata.name for p in api.list_pod_for_all_namespaces().items) == ["a", "b"]


def _watch_lines(server: FakeApiServer, query: str, path: str = "/api/v1/pods") -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{server.url}{path}?watch=true&timeoutSeconds=1&{query}", timeout=10) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "application/json"
        return [json.loads(line) for line in resp.read().splitlines()]


def test_watch_replays_from_a_version_and_starts_from_zero_with_the_current_state(apiserver: FakeApiServer) -> None:
    first = apiserver.store.put(make_pod("a"))
    apiserver.store.put(make_pod("a", phase="Succeeded"))
    apiserver.store.delete("demo", "a")
    apiserver.store.put(make_pod("b"))
    replay = _watch_lines(apiserver, f"resourceVersion={first}")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in replay] == [
        ("MODIFIED", "a"), ("DELETED", "a"), ("ADDED", "b")]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in _watch_lines(apiserver, "")] == [
        ("ADDED", "b")]


def test_watch_from_a_compacted_version_gets_410_expired(apiserver: FakeApiServer) -> None:
    first = apiserver.store.put(make_pod("a"))
    apiserver.store.put(make_pod("b"))
    apiserver.store.compact()
    [event] = _watch_lines(apiserver, f"resourceVersion={first}")
    assert event["type"] == "ERROR"
    assert event["object"] == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": f"too old resource version: {first} ({first + 1})",
                               "reason": "Expired", "code": 410}


@pytest.mark.parametrize(("kind", "was", "now", "expected"), [
    ("ADDED", None, True, "ADDED"),
    ("ADDED", None, False, None),
    ("MODIFIED", True, True, "MODIFIED"),
    ("MODIFIED", False, True, "ADDED"),
    ("MODIFIED", True, False, "DELETED"),
    ("MODIFIED", False, False, None),
    ("DELETED", True, False, "DELETED"),
    ("DELETED", False, False, None),
])
def test_a_filtered_watch_sees_objects_enter_and_leave(kind: str, was: bool | None, now: bool,
                                                        expected: str | None) -> None:
    old = None if was is None else {"metadata": {"labels": {"app": "vllm" if was else "x"}}}
    new = {"metadata": {"labels": {"app": "vllm" if now else "x"}}}
    event = translate(kind, old, new, lambda o: o["metadata"]["labels"]["app"] == "vllm")
    assert (event[0] if event else None) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("", []),
    ("a=b", [Requirement("a", "=", frozenset({"b"}))]),
    ("a!=b, !c", [Requirement("a", "!=", frozenset({"b"})), Requirement("c", "!exists")]),
    ("k in (x, y),z notin (w)", [Requirement("k", "in", frozenset({"x", "y"})),
                                 Requirement("z", "notin", frozenset({"w"}))]),
])
def test_label_selector_parsing(text: str, expected: list[Requirement]) -> None:
    assert parse_label_selector(text) == expected


@pytest.mark.parametrize("text", ["app in vllm", "=x", "a=b=c", "a b", "(a)"])
def test_malformed_label_selector_is_rejected(text: str) -> None:
    with pytest.raises(SelectorError):
        parse_label_selector(text)


def test_lists_are_paged_by_limit_and_continue(apiserver: FakeApiServer) -> None:
    for name in "abcde":
        apiserver.store.put(make_pod(name))
    api = core_v1(apiserver)
    first = api.list_pod_for_all_namespaces(limit=2)
    second = api.list_pod_for_all_namespaces(limit=2, _continue=first.metadata._continue)
    third = api.list_pod_for_all_namespaces(limit=2, _continue=second.metadata._continue)
    assert [[p.metadata.name for p in page.items] for page in (first, second, third)] == [["a", "b"], ["c", "d"],
                                                                                          ["e"]]
    assert third.metadata._continue is None
    apiserver.store.put(make_pod("f"))
    apiserver.store.compact()  # the token's snapshot is gone
    with pytest.raises(ApiException) as caught:
        api.list_pod_for_all_namespaces(limit=2, _continue=first.metadata._continue)
    assert caught.value.status == 410


def test_cluster_scoped_resource_slices_are_listed_and_watched(apiserver: FakeApiServer) -> None:
    apiserver.store.put(make_resource_slice("node-a-gpu", node="node-a"))
    apiserver.store.put(make_resource_slice("node-b-gpu", node="node-b"))
    apiserver.store.put(make_pod("a"))
    slices = client.ResourceV1Api(api_client(apiserver)).list_resource_slice(field_selector="spec.nodeName=node-a")
    assert [s.metadata.name for s in slices.items if s.metadata] == ["node-a-gpu"]
    events = _watch_lines(apiserver, "fieldSelector=spec.driver%3Dgpu.nvidia.com",
                          "/apis/resource.k8s.io/v1/resourceslices")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "node-a-gpu"),
                                                                              ("ADDED", "node-b-gpu")]


def test_single_objects_and_not_found(apiserver: FakeApiServer) -> None:
    apiserver.store.put(make_configmap("settings", "kube-system", {"k": "v"}))
    api = core_v1(apiserver)
    assert api.read_namespaced_config_map("settings", "kube-system").data == {"k": "v"}
    with pytest.raises(ApiException) as caught:
        api.read_namespaced_config_map("missing", "kube-system")
    assert caught.value.status == 404


def test_injected_and_standing_failures(apiserver: FakeApiServer) -> None:
    api = core_v1(apiserver)
    apiserver.injected.append(status(403, "Forbidden", "no"))
    with pytest.raises(ApiException) as caught:
        api.list_pod_for_all_namespaces()
    assert caught.value.status == 403
    assert api.list_pod_for_all_namespaces().items == []  # one answer each
    apiserver.failing = status(500, "InternalError", "etcdserver: request timed out")
    for _ in range(2):
        with pytest.raises(ApiException) as caught:
            api.list_pod_for_all_namespaces()
        assert caught.value.status == 500
    apiserver.failing = None
    assert api.list_pod_for_all_namespaces().items == []


class _RawWatch:
    """A watch read with a bare socket, so a test sees exactly how the stream ends."""

    def __init__(self, server: FakeApiServer) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        self.sock.sendall(b"GET /api/v1/pods?watch=true&resourceVersion=1&timeoutSeconds=30 HTTP/1.1\r\n"
                          b"Host: x\r\n\r\n")
        self.data = b""
        self.ended = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while chunk := self.sock.recv(65536):
                self.data += chunk
                if self.data.endswith(b"0\r\n\r\n"):
                    break
        except OSError:
            pass
        self.ended.set()


def _opened(server: FakeApiServer, count: int) -> None:
    for _ in range(500):
        if server.open_watches() == count:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"{server.open_watches()} open watches, expected {count}")


def test_dropped_watch_ends_without_the_chunked_terminator(apiserver: FakeApiServer) -> None:
    watch = _RawWatch(apiserver)
    _opened(apiserver, 1)
    apiserver.store.put(make_pod("a"))
    apiserver.drop_watches()
    assert watch.ended.wait(10)
    assert b'"ADDED"' in watch.data and not watch.data.endswith(b"0\r\n\r\n")


def test_closed_watch_ends_cleanly_and_error_event_ends_it(apiserver: FakeApiServer) -> None:
    clean = _RawWatch(apiserver)
    _opened(apiserver, 1)
    apiserver.close_watches()
    assert clean.ended.wait(10) and clean.data.endswith(b"0\r\n\r\n")
    errored = _RawWatch(apiserver)
    _opened(apiserver, 1)
    apiserver.error_watches(status(500, "InternalError", "etcd"))
    assert errored.ended.wait(10)
    assert b'"type": "ERROR"' in errored.data and b'"code": 500' in errored.data


def test_stalled_watch_sends_nothing_until_it_flows_again(apiserver: FakeApiServer) -> None:
    watch = _RawWatch(apiserver)
    _opened(apiserver, 1)
    apiserver.stall_watches()
    apiserver.store.put(make_pod("a"))
    assert not watch.ended.wait(0.3)
    assert b"ADDED" not in watch.data
    apiserver.stall_watches(False)
    for _ in range(500):
        if b'"ADDED"' in watch.data:
            break
        threading.Event().wait(0.01)
    assert b'"ADDED"' in watch.data
