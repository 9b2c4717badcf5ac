"""The pod list/watch wire format: PodList bodies, watch lines, and the retry schedule."""

from __future__ import annotations

import json
from typing import Any

import pytest

from exporter.contract.kube_events import (
    PodListError,
    WatchError,
    WatchExpired,
    apply_event,
    backoff_delay,
    parse_pod_list,
)
from tests.exporter.fake_apiserver import make_pod, status


@pytest.mark.parametrize(("attempt", "jitter", "expected"), [
    (0, 1.0, 0.5), (1, 1.0, 1.0), (3, 1.0, 4.0), (6, 1.0, 30.0), (10_000, 1.0, 30.0),
    (0, 0.0, 0.25), (6, 0.0, 15.0), (2, 0.5, 1.5),
])
def test_backoff_doubles_caps_and_jitters(attempt: int, jitter: float, expected: float) -> None:
    assert backoff_delay(attempt, initial=0.5, maximum=30.0, jitter=jitter) == pytest.approx(expected)


def test_pod_list_is_keyed_by_uid() -> None:
    body = {"kind": "PodList", "metadata": {"resourceVersion": "42"},
            "items": [make_pod("a"), {"metadata": {"namespace": "x", "name": "no-uid"}}]}
    pods, version = parse_pod_list(json.dumps(body).encode())
    assert version == "42"
    assert sorted(pods) == ["uid-demo-a", "x/no-uid"]


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[]", b'{"items": []}', b'{"metadata": {}, "items": []}',
    b'{"metadata": {"resourceVersion": ""}, "items": []}', b'{"metadata": {"resourceVersion": "1"}, "items": 3}',
    b'{"metadata": {"resourceVersion": "1"}, "items": ["pod"]}', json.dumps(status(500, "x", "y")).encode(),
])
def test_malformed_pod_list_is_a_typed_error(body: bytes) -> None:
    with pytest.raises(PodListError):
        parse_pod_list(body)


def _event(kind: str, obj: dict[str, Any]) -> str:
    return json.dumps({"type": kind, "object": obj})


_A = make_pod("a") | {"metadata": {**make_pod("a")["metadata"], "resourceVersion": "7"}}
_BOOKMARK = {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": "9"}}


@pytest.mark.parametrize(("before", "line", "changed", "version", "after"), [
    ({}, _event("ADDED", _A), True, "7", {"uid-demo-a"}),
    ({"uid-demo-a": _A}, _event("MODIFIED", _A), True, "7", {"uid-demo-a"}),
    ({"uid-demo-a": _A}, _event("DELETED", _A), True, "7", set()),
    ({}, _event("DELETED", _A), True, "7", set()),  # deleting an unknown pod is harmless
    ({"uid-demo-a": _A}, _event("BOOKMARK", _BOOKMARK), False, "9", {"uid-demo-a"}),
    ({}, _event("ADDED", make_pod("b")), True, None, {"uid-demo-b"}),
])
def test_apply_event(before: dict[str, Any], line: str, changed: bool, version: str | None,
                     after: set[str]) -> None:
    pods = dict(before)
    assert apply_event(pods, line) == (changed, version)
    assert set(pods) == after


@pytest.mark.parametrize(("line", "error"), [
    (_event("ERROR", status(410, "Expired", "too old resource version: 1 (5)")), WatchExpired),
    (_event("ERROR", status(500, "InternalError", "etcd")), WatchError),
    ("{not json", WatchError),
    ('{"type": "ADDED"}', WatchError),
    ('{"type": "ADDED", "object": []}', WatchError),
    ("[1, 2]", WatchError),
])
def test_apply_event_errors_leave_pods_alone(line: str, error: type[Exception]) -> None:
    pods = {"uid-demo-a": _A}
    with pytest.raises(error):
        apply_event(pods, line)
    assert pods == {"uid-demo-a": _A}
