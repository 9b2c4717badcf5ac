"""The list/watch wire format for any resource: list bodies, watch lines, the user's conversion, the retry schedule."""

from __future__ import annotations

import json
from typing import Any

import pytest

from exporter.contract.kube_events import (
    ListError,
    WatchError,
    WatchExpired,
    apply_event,
    backoff_delay,
    object_key,
    parse_list,
)
from tests.kube.objects import make_pod, make_resource_slice, status


def name(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["name"])


def running_name(obj: dict[str, Any]) -> str | None:
    """A conversion that keeps only running pods, as the exporter's targets do."""
    return name(obj) if (obj.get("status") or {}).get("phase") == "Running" else None


def broken(obj: dict[str, Any]) -> str:
    raise KeyError("a conversion bug")


@pytest.mark.parametrize(("attempt", "jitter", "expected"), [
    (0, 1.0, 0.5), (1, 1.0, 1.0), (3, 1.0, 4.0), (6, 1.0, 30.0), (10_000, 1.0, 30.0),
    (0, 0.0, 0.25), (6, 0.0, 15.0), (2, 0.5, 1.5),
])
def test_backoff_doubles_caps_and_jitters(attempt: int, jitter: float, expected: float) -> None:
    assert backoff_delay(attempt, initial=0.5, maximum=30.0, jitter=jitter) == pytest.approx(expected)


@pytest.mark.parametrize(("obj", "key"), [
    (make_pod("a"), "uid-demo-a"),
    ({"metadata": {"namespace": "x", "name": "no-uid"}}, "x/no-uid"),
    (make_resource_slice("node-a-gpu", node="node-a"), "uid-node-a-gpu"),
])
def test_object_key(obj: dict[str, Any], key: str) -> None:
    assert object_key(obj) == key


@pytest.mark.parametrize(("body", "convert", "items", "token"), [
    ({"kind": "PodList", "metadata": {"resourceVersion": "42"}, "items": [make_pod("a"), make_pod("b")]},
     name, {"uid-demo-a": "a", "uid-demo-b": "b"}, None),
    ({"kind": "PodList", "metadata": {"resourceVersion": "42", "continue": "next"},
      "items": [make_pod("a"), make_pod("p", phase="Pending")]}, running_name, {"uid-demo-a": "a"}, "next"),
    ({"kind": "ResourceSliceList", "metadata": {"resourceVersion": "42", "continue": ""},
      "items": [make_resource_slice("s", node="n")]}, name, {"uid-s": "s"}, None),
    ({"kind": "PodList", "metadata": {"resourceVersion": "42"}, "items": None}, name, {}, None),
])
def test_list_bodies(body: dict[str, Any], convert: Any, items: dict[str, str], token: str | None) -> None:
    assert parse_list(json.dumps(body).encode(), convert) == (items, "42", token)


@pytest.mark.parametrize(("body", "convert"), [
    (b"", name), (b"not json", name), (b"[]", name), (b'{"items": []}', name),
    (b'{"metadata": {}, "items": []}', name), (b'{"metadata": {"resourceVersion": ""}, "items": []}', name),
    (b'{"metadata": {"resourceVersion": "1"}, "items": 3}', name),
    (b'{"metadata": {"resourceVersion": "1"}, "items": ["pod"]}', name),
    (json.dumps(status(500, "x", "y")).encode(), name),
    (json.dumps({"metadata": {"resourceVersion": "1"}, "items": [make_pod("a")]}).encode(), broken),
])
def test_malformed_list_is_a_typed_error(body: bytes, convert: Any) -> None:
    with pytest.raises(ListError):
        parse_list(body, convert)


def _event(kind: str, obj: dict[str, Any]) -> str:
    return json.dumps({"type": kind, "object": obj})


_A = make_pod("a") | {"metadata": {**make_pod("a")["metadata"], "resourceVersion": "7"}}
_A_DONE = _A | {"status": {"phase": "Succeeded"}}
_BOOKMARK = {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": "9"}}


@pytest.mark.parametrize(("before", "line", "changed", "version", "after"), [
    ({}, _event("ADDED", _A), True, "7", {"uid-demo-a": "a"}),
    ({"uid-demo-a": "old"}, _event("MODIFIED", _A), True, "7", {"uid-demo-a": "a"}),
    ({"uid-demo-a": "a"}, _event("DELETED", _A), True, "7", {}),
    ({}, _event("DELETED", _A), False, "7", {}),  # deleting an unknown object is harmless
    ({"uid-demo-a": "a"}, _event("MODIFIED", _A_DONE), True, "7", {}),  # no longer of interest: it leaves
    ({}, _event("ADDED", _A_DONE), False, "7", {}),  # never of interest: nothing changes
    ({"uid-demo-a": "a"}, _event("BOOKMARK", _BOOKMARK), False, "9", {"uid-demo-a": "a"}),
    ({}, _event("ADDED", make_pod("b")), True, None, {"uid-demo-b": "b"}),
])
def test_apply_event(before: dict[str, str], line: str, changed: bool, version: str | None,
                     after: dict[str, str]) -> None:
    items = dict(before)
    assert apply_event(items, line, running_name) == (changed, version)
    assert items == after


@pytest.mark.parametrize(("line", "convert", "error"), [
    (_event("ERROR", status(410, "Expired", "too old resource version: 1 (5)")), name, WatchExpired),
    (_event("ERROR", status(500, "InternalError", "etcd")), name, WatchError),
    ("{not json", name, WatchError),
    ('{"type": "ADDED"}', name, WatchError),
    ('{"type": "ADDED", "object": []}', name, WatchError),
    ("[1, 2]", name, WatchError),
    (_event("MODIFIED", _A), broken, WatchError),
])
def test_apply_event_errors_leave_items_alone(line: str, convert: Any, error: type[Exception]) -> None:
    items = {"uid-demo-a": "a"}
    with pytest.raises(error):
        apply_event(items, line, convert)
    assert items == {"uid-demo-a": "a"}
