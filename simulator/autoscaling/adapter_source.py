"""The HPA's metrics client against a real custom.metrics.k8s.io server, over HTTPS.

What kube-controller-manager does through the aggregation layer (k8s-metrics-api.md §1.1, §3):
discover the group's preferred version from ``/apis`` once per sync, then one GET per metric
(``pods/*/METRIC?labelSelector=...&metricLabelSelector=...``, ``deployments.apps/NAME/METRIC``,
external ``namespaces/NS/METRIC?labelSelector=...``), read each value as ``MilliValue()`` and key
pod metrics by ``describedObject.name``. The request carries the front proxy's client certificate
and the HPA's identity in ``X-Remote-User`` / ``X-Remote-Group``, as kube-apiserver forwards it.
A fetch is I/O; what it returns is a plain :class:`MetricsSource` the pure HPA model reads.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from adapter.quantity import parse_milli
from simulator.autoscaling.spec import MetricTarget

CUSTOM_GROUP = "custom.metrics.k8s.io"
EXTERNAL_PREFIX = "/apis/external.metrics.k8s.io/v1beta1"
HPA_USER = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
HPA_GROUPS = ("system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated")
MAX_BODY = 4 * 1024 * 1024


class AdapterError(Exception):
    """The adapter could not be asked (connection, TLS, discovery)."""


@dataclass(frozen=True)
class ScaleTarget:
    """The HPA's ``scaleTargetRef`` and the scale's label selector."""

    namespace: str
    name: str
    selector: Mapping[str, str]
    resource: str = "deployments.apps"


@dataclass
class FetchedMetrics:
    """One sync's answers: a :class:`MetricsSource`; a failed metric has no entry and an error."""

    pod_values: dict[str, dict[str, float]] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def pods(self, metric: MetricTarget) -> Mapping[str, float]:
        return self.pod_values.get(metric.key, {})

    def object(self, metric: MetricTarget) -> float | None:
        return self.values.get(metric.key)

    def external(self, metric: MetricTarget) -> float | None:
        return self.values.get(metric.key)


def _selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


class AdapterClient:
    def __init__(self, base_url: str, *, session: aiohttp.ClientSession, ssl_context: ssl.SSLContext,
                 target: ScaleTarget, user: str = HPA_USER, groups: Sequence[str] = HPA_GROUPS,
                 timeout: float = 5.0) -> None:
        self._base = base_url.rstrip("/")
        self._session = session
        self._ssl = ssl_context
        self._target = target
        self._headers = [("X-Remote-User", user), *(("X-Remote-Group", g) for g in groups)]
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    @property
    def base_url(self) -> str:
        return self._base

    async def _get(self, path: str) -> tuple[int, dict[str, Any]]:
        try:
            async with self._session.get(self._base + path, ssl=self._ssl, headers=self._headers,
                                         timeout=self._timeout) as resp:
                raw = await resp.content.read(MAX_BODY + 1)
                if len(raw) > MAX_BODY:
                    raise AdapterError(f"GET {path}: answer larger than {MAX_BODY} bytes")
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AdapterError(f"GET {path}: {exc.__class__.__name__}: {exc}") from exc
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        return status, body if isinstance(body, dict) else {}

    async def preferred_version(self) -> str:
        """The custom metrics group's preferred version from ``/apis`` discovery."""
        status, body = await self._get("/apis")
        if status != 200:
            raise AdapterError(f"GET /apis: HTTP {status}")
        for group in body.get("groups", []):
            if isinstance(group, dict) and group.get("name") == CUSTOM_GROUP:
                version = group.get("preferredVersion", {}).get("version")
                if isinstance(version, str):
                    return version
        raise AdapterError(f"/apis does not list {CUSTOM_GROUP}")

    def path_for(self, version: str, metric: MetricTarget) -> str:
        t = self._target
        query: dict[str, str] = {}
        if metric.type == "External":
            if metric.selector:
                query["labelSelector"] = _selector(metric.selector)
            path = f"{EXTERNAL_PREFIX}/namespaces/{t.namespace}/{quote(metric.metric, safe='')}"
        else:
            if metric.selector:
                query["metricLabelSelector"] = _selector(metric.selector)
            prefix = f"/apis/{CUSTOM_GROUP}/{version}/namespaces/{t.namespace}"
            if metric.type == "Pods":
                query = {"labelSelector": _selector(t.selector), **query}
                path = f"{prefix}/pods/%2A/{metric.metric}"
            else:
                path = f"{prefix}/{t.resource}/{t.name}/{metric.metric}"
        return path + ("?" + urlencode(query) if query else "")

    async def fetch(self, metrics: Sequence[MetricTarget]) -> FetchedMetrics:
        """Ask for each metric as one HPA sync does; failures are recorded per metric, never raised."""
        out = FetchedMetrics()
        try:
            version = await self.preferred_version()
        except AdapterError as exc:
            for m in metrics:
                out.errors[m.key] = str(exc)
            return out
        for metric in metrics:
            try:
                self._read(out, metric, *await self._get(self.path_for(version, metric)))
            except (AdapterError, ValueError, KeyError, TypeError) as exc:
                out.errors[metric.key] = str(exc)
        return out

    @staticmethod
    def _read(out: FetchedMetrics, metric: MetricTarget, status: int, body: dict[str, Any]) -> None:
        if status != 200:
            raise AdapterError(f"HTTP {status} {body.get('reason', '')}: {body.get('message', '')}".strip())
        items = body.get("items")
        if not isinstance(items, list) or not items:
            raise AdapterError("no metrics returned from custom metrics API")
        if metric.type == "Pods":
            out.pod_values[metric.key] = {i["describedObject"]["name"]: parse_milli(i["value"]) / 1000
                                          for i in items}
        elif metric.type == "Object":
            if len(items) != 1:
                raise AdapterError(f"expected exactly one object metric, got {len(items)}")
            out.values[metric.key] = parse_milli(items[0]["value"]) / 1000
        else:
            out.values[metric.key] = sum(parse_milli(i["value"]) for i in items) / 1000
