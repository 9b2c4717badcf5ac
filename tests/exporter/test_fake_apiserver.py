"""The fake API server is faithful where the exporter relies on it: it really filters, and rejects like the real one."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.exporter.fake_apiserver import FakeApiServer, core_v1, make_pod
from tests.exporter.kube_selectors import Requirement, SelectorError, parse_label_selector, translate


@pytest.fixture
def apiserver() -> Iterator[FakeApiServer]:
    server = FakeApiServer().start()
    yield server
    server.stop()


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
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as caught:
        core_v1(apiserver).list_pod_for_all_namespaces(field_selector="spec.schedulerName=x")
    assert caught.value.status == 400


def test_namespaced_list_sees_only_its_namespace(apiserver: FakeApiServer) -> None:
    apiserver.store.put(make_pod("a", namespace="demo"))
    apiserver.store.put(make_pod("b", namespace="other"))
    api = core_v1(apiserver)
    assert [p.metadata.name for p in api.list_namespaced_pod("other").items] == ["b"]
    assert sorted(p.metadata.name for p in api.list_pod_for_all_namespaces().items) == ["a", "b"]


def _watch_lines(server: FakeApiServer, query: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{server.url}/api/v1/pods?watch=true&timeoutSeconds=1&{query}", timeout=10) as resp:
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
