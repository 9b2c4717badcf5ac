"""Every response shape against the reference's examples (tests/fixtures/adapter/reference)."""

from __future__ import annotations

import calendar
import json
import time
from pathlib import Path
from typing import Any

import pytest

from adapter import wire
from adapter.selectors import EVERYTHING, parse_selector
from adapter.wire import Item, ObjectRef

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "adapter" / "reference"
NOON = calendar.timegm(time.strptime("2026-08-20T12:00:00Z", "%Y-%m-%dT%H:%M:%SZ"))
POD = ObjectRef("Pod", "/v1", "vllm-7d9c6-abcde", "llm")


def reference(name: str) -> Any:
    return json.loads((REFERENCE / name).read_text())


def assert_same(ours: Any, theirs: Any, path: str = "$") -> None:
    """Field by field, with the path of the first difference (key order included)."""
    assert type(ours) is type(theirs), f"{path}: {type(ours).__name__} != {type(theirs).__name__}"
    if isinstance(theirs, dict):
        assert list(ours) == list(theirs), f"{path}: keys {list(ours)} != {list(theirs)}"
        for key in theirs:
            assert_same(ours[key], theirs[key], f"{path}.{key}")
    elif isinstance(theirs, list):
        assert len(ours) == len(theirs), f"{path}: {len(ours)} items != {len(theirs)}"
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_same(a, b, f"{path}[{i}]")
    else:
        assert ours == theirs, f"{path}: {ours!r} != {theirs!r}"


def test_pods_v1beta2_matches_reference() -> None:
    item = Item(POD, "vllm_kv_cache_usage", EVERYTHING, NOON, 30, "750m")
    assert_same(wire.metric_value_list("v1beta2", [item]), reference("pods-v1beta2.json"))


def test_pods_v1beta1_item_matches_reference() -> None:
    item = Item(POD, "vllm_kv_cache_usage", EVERYTHING, NOON, 30, "750m")
    body = wire.metric_value_list("v1beta1", [item])
    assert body["apiVersion"] == "custom.metrics.k8s.io/v1beta1"
    assert_same(body["items"][0], reference("pods-v1beta1-item.json"))


def test_external_matches_reference() -> None:
    body = wire.external_value_list([("vllm_queue_depth", {"model": "llama-3-8b"}, NOON, None, "12")])
    assert_same(body, reference("external.json"))


def test_discovery_entries_match_reference() -> None:
    ours = wire.api_resource_list("custom.metrics.k8s.io/v1beta2", ["vllm_kv_cache_usage"])
    theirs = reference("discovery-v1beta2.json")
    assert_same({k: v for k, v in ours.items() if k != "resources"},
                {k: v for k, v in theirs.items() if k != "resources"})
    by_name = {r["name"]: r for r in ours["resources"]}
    for entry in theirs["resources"]:
        assert_same(by_name[entry["name"]], entry, entry["name"])
    assert set(by_name) == {f"{r}/vllm_kv_cache_usage" for r in ("pods", "namespaces", "deployments.apps",
                                                                  "statefulsets.apps")}


def test_not_found_status_matches_reference() -> None:
    body = wire.status(404, "NotFound", "the server could not find the metric vllm_kv_cache_usage for pods")
    assert_same(body, reference("notfound.json"))


def test_unauthorized_status_carries_reference_fields() -> None:
    body = wire.status(401, "Unauthorized", "Unauthorized")
    theirs = reference("unauthorized.json")
    assert {k: body[k] for k in theirs} == theirs
    assert body["metadata"] == {}  # metav1.Status always carries ListMeta


@pytest.mark.parametrize(("selector", "expected"), [
    ("", None),
    ("quantile=0.95", {"matchLabels": {"quantile": "0.95"}}),
    ("model in (b,a),!x", {"matchExpressions": [{"key": "model", "operator": "In", "values": ["a", "b"]},
                                                 {"key": "x", "operator": "DoesNotExist"}]}),
    ("a!=b,c", {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["b"]},
                                     {"key": "c", "operator": "Exists"}]}),
    ("q=1,m notin (z)", {"matchLabels": {"q": "1"},
                         "matchExpressions": [{"key": "m", "operator": "NotIn", "values": ["z"]}]}),
])
def test_metric_selector_as_label_selector(selector: str, expected: Any) -> None:
    assert wire.label_selector(parse_selector(selector)) == expected


def test_groups_prefer_v1beta2_and_hide_external_unless_enabled() -> None:
    plain = wire.api_group_list(external=False)
    assert [g["name"] for g in plain["groups"]] == ["custom.metrics.k8s.io"]
    assert plain["groups"][0]["preferredVersion"] == {"groupVersion": "custom.metrics.k8s.io/v1beta2",
                                                      "version": "v1beta2"}
    both = wire.api_group_list(external=True)
    assert [g["name"] for g in both["groups"]] == ["custom.metrics.k8s.io", "external.metrics.k8s.io"]
    assert wire.api_group("custom.metrics.k8s.io")["kind"] == "APIGroup"


def test_window_is_omitted_for_gauges() -> None:
    item = Item(POD, "m", EVERYTHING, NOON, None, "5")
    assert "windowSeconds" not in wire.metric_value_list("v1beta2", [item])["items"][0]
    assert "window" not in wire.metric_value_list("v1beta1", [item])["items"][0]
