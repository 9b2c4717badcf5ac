"""JSON bodies of the custom/external metrics APIs, shaped as client-go decodes them.

Pure functions: Python values in, JSON-ready dicts out. Field names, nesting and
null-versus-omitted follow k8s.io/metrics (v1beta1 ``metricName``/``window``,
v1beta2 ``metric{name,selector}``/``windowSeconds``; ``selector`` is never omitted).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from adapter.selectors import Selector

CUSTOM_GROUP = "custom.metrics.k8s.io"
EXTERNAL_GROUP = "external.metrics.k8s.io"
CUSTOM_VERSIONS = ("v1beta2", "v1beta1")  # preferred first
EXTERNAL_VERSION = "v1beta1"

Json = dict[str, Any]


@dataclass(frozen=True)
class ObjectRef:
    """The object a value describes (``describedObject``)."""

    kind: str
    api_version: str
    name: str
    namespace: str = ""

    def to_json(self) -> Json:
        out: Json = {"kind": self.kind}
        if self.namespace:
            out["namespace"] = self.namespace
        out["name"] = self.name
        out["apiVersion"] = self.api_version
        return out


@dataclass(frozen=True)
class Item:
    described: ObjectRef
    metric: str
    selector: Selector
    timestamp: float
    window_seconds: int | None
    value: str


def rfc3339(ts: float) -> str:
    """metav1.Time wire form: second precision, UTC, ``Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def label_selector(selector: Selector) -> Json | None:
    """A parsed selector as metav1.LabelSelector JSON (what ParseToLabelSelector gives); empty is null."""
    if not selector.requirements:
        return None
    match_labels: dict[str, str] = {}
    expressions: list[Json] = []
    ops = {"in": "In", "notin": "NotIn", "!=": "NotIn", "exists": "Exists", "!": "DoesNotExist"}
    for req in selector.requirements:
        if req.op == "=":
            match_labels[req.key] = next(iter(req.values))
            continue
        expr: Json = {"key": req.key, "operator": ops[req.op]}
        if req.values:
            expr["values"] = sorted(req.values)
        expressions.append(expr)
    out: Json = {}
    if match_labels:
        out["matchLabels"] = match_labels
    if expressions:
        out["matchExpressions"] = expressions
    return out


def _item(version: str, item: Item) -> Json:
    if version == "v1beta2":
        out: Json = {"describedObject": item.described.to_json(),
                     "metric": {"name": item.metric, "selector": label_selector(item.selector)},
                     "timestamp": rfc3339(item.timestamp)}
        if item.window_seconds is not None:
            out["windowSeconds"] = item.window_seconds
        out["value"] = item.value
        return out
    out = {"describedObject": item.described.to_json(), "metricName": item.metric,
           "timestamp": rfc3339(item.timestamp)}
    if item.window_seconds is not None:
        out["window"] = item.window_seconds
    out["value"] = item.value
    out["selector"] = label_selector(item.selector)
    return out


def metric_value_list(version: str, items: Iterable[Item]) -> Json:
    return {"kind": "MetricValueList", "apiVersion": f"{CUSTOM_GROUP}/{version}", "metadata": {},
            "items": [_item(version, i) for i in items]}


def external_value_list(items: Iterable[tuple[str, dict[str, str], float, int | None, str]]) -> Json:
    """Items are (metric name, metric labels, timestamp, window, quantity string)."""
    out = []
    for name, labels, ts, window, value in items:
        entry: Json = {"metricName": name, "metricLabels": labels, "timestamp": rfc3339(ts)}
        if window is not None:
            entry["window"] = window
        entry["value"] = value
        out.append(entry)
    return {"kind": "ExternalMetricValueList", "apiVersion": f"{EXTERNAL_GROUP}/{EXTERNAL_VERSION}",
            "metadata": {}, "items": out}


def status(code: int, reason: str, message: str) -> Json:
    """metav1.Status failure body."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def _version_entries(group: str, versions: Sequence[str]) -> Json:
    listed = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": listed, "preferredVersion": listed[0]}


def _groups(external: bool) -> list[Json]:
    groups = [_version_entries(CUSTOM_GROUP, CUSTOM_VERSIONS)]
    if external:
        groups.append(_version_entries(EXTERNAL_GROUP, (EXTERNAL_VERSION,)))
    return groups


def api_group_list(*, external: bool) -> Json:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": _groups(external)}


def api_group(group: str) -> Json:
    versions = CUSTOM_VERSIONS if group == CUSTOM_GROUP else (EXTERNAL_VERSION,)
    return {"kind": "APIGroup", "apiVersion": "v1", **_version_entries(group, versions)}


# The resources every metric is served on: (GroupResource string, namespaced).
CUSTOM_RESOURCES: tuple[tuple[str, bool], ...] = (
    ("pods", True), ("deployments.apps", True), ("statefulsets.apps", True), ("namespaces", False))


def api_resource_list(group_version: str, metrics: Sequence[str]) -> Json:
    if group_version.startswith(EXTERNAL_GROUP):
        resources = [{"name": m, "singularName": "", "namespaced": True, "kind": "ExternalMetricValueList",
                      "verbs": ["get"]} for m in metrics]
    else:
        resources = [{"name": f"{res}/{m}", "singularName": "", "namespaced": namespaced,
                      "kind": "MetricValueList", "verbs": ["get"]}
                     for m in metrics for res, namespaced in CUSTOM_RESOURCES]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}
