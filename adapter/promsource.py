"""The ``prometheus`` provider: one PromQL instant query per request, over the Prometheus HTTP API.

Values are not cached: each HPA request runs one query for its namespace, and
pods are picked from the result here. Any failure to get an answer (connection,
timeout, HTTP or PromQL error) is a :class:`SourceUnavailableError` with the
cause chained and logged; it is never turned into a zero.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from adapter.promquery import FIELD, query_for, unhonored_jobs_query
from adapter.provider import (
    DEFAULT_QUANTILE,
    MetricInfo,
    MetricQuery,
    PodValue,
    SourceMisconfiguredError,
    SourceUnavailableError,
    UnknownMetricError,
    pick_one,
    served_metrics,
)
from exporter.contract.errorlog import RateLimitedLog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrometheusSettings:
    url: str
    timeout: float = 5.0
    authorization: str = ""  # sent verbatim as the Authorization header, e.g. "Bearer <token>"
    max_age: float = 60.0
    window_seconds: int = 60
    default_quantile: str = DEFAULT_QUANTILE  # served when the metric selector names no quantile (policy)


def values_by_pod(result: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """Instant-vector result -> pod -> [(sample timestamp, value)] (pure).

    Values and their samples' timestamps come as series told apart by :data:`FIELD`; a value
    without its timestamp keeps the evaluation time. NaN and Inf are not values.
    """
    stamps: dict[tuple[tuple[str, str], ...], float] = {}
    values: list[tuple[tuple[tuple[str, str], ...], float, float]] = []
    for entry in result:
        labels = dict(entry.get("metric", {}))
        field = labels.pop(FIELD, "value")
        key = tuple(sorted(labels.items()))
        ts, raw = entry.get("value", (0, "NaN"))
        if field == "timestamp":
            stamps[key] = float(raw)
        else:
            values.append((key, float(ts), float(raw)))
    out: dict[str, list[tuple[float, float]]] = {}
    for key, ts, value in values:
        pod = dict(key).get("pod", "")
        if pod and math.isfinite(value):
            out.setdefault(pod, []).append((stamps.get(key, ts), value))
    return out


class PrometheusProvider:
    """Implements :class:`adapter.provider.MetricsProvider` with PromQL."""

    def __init__(self, *, session: aiohttp.ClientSession, settings: PrometheusSettings) -> None:
        self._session = session
        self._settings = settings
        self._metrics = {m.name: m for m in served_metrics(settings.window_seconds)}
        self._last_ok: float | None = None
        self._misconfigured = RateLimitedLog(log, burst=1)  # every request would repeat it

    def list_metrics(self) -> Sequence[MetricInfo]:
        return tuple(self._metrics.values())

    @property
    def ready(self) -> bool:
        return True  # Prometheus is asked per request, and each failure is answered as such

    @property
    def generation(self) -> int | None:
        return None  # no local view: answers are never reused

    def freshness(self) -> Mapping[str, float]:
        return {} if self._last_ok is None else {self._settings.url: time.monotonic() - self._last_ok}

    async def query(self, expr: str) -> list[dict[str, Any]]:
        headers = {"Authorization": self._settings.authorization} if self._settings.authorization else {}
        url = self._settings.url.rstrip("/") + "/api/v1/query"
        timeout = aiohttp.ClientTimeout(total=self._settings.timeout)
        try:
            async with self._session.post(url, data={"query": expr}, headers=headers, timeout=timeout) as resp:
                body = await resp.json(content_type=None)
                if resp.status != 200 or body.get("status") != "success":
                    raise SourceUnavailableError(
                        f"Prometheus answered HTTP {resp.status}: {body.get('errorType')}: {body.get('error')}")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.error("Prometheus query failed (%s): %s: %s", url, type(exc).__name__, exc)
            raise SourceUnavailableError(f"Prometheus at {url}: {type(exc).__name__}: {exc}") from exc
        except SourceUnavailableError as exc:
            log.error("Prometheus query %r failed: %s", expr, exc)
            raise
        self._last_ok = time.monotonic()
        result: list[dict[str, Any]] = body.get("data", {}).get("result", [])
        return result

    async def _check_honor_labels(self, info: MetricInfo, namespace: str) -> None:
        """Nothing for the namespace: if a job stored it as ``exported_namespace``, say which job to fix."""
        jobs = sorted({r.get("metric", {}).get("job", "") for r in await self.query(unhonored_jobs_query(
            info, namespace))})
        if jobs:
            message = (f"Prometheus job(s) {', '.join(repr(j) for j in jobs)} scrape the kvscale exporter without "
                       "honor_labels: true, so its namespace and pod labels are stored as exported_namespace and "
                       "exported_pod; set honorLabels: true on the ServiceMonitor/PodMonitor")
            self._misconfigured.warning("%s", message)
            raise SourceMisconfiguredError(message)

    async def pod_value(self, namespace: str, pod: str, query: MetricQuery) -> PodValue | None:
        values = await self.pod_values(namespace, [pod], query)
        return values[0] if values else None

    async def pod_values(self, namespace: str, pods: Sequence[str], query: MetricQuery) -> list[PodValue]:
        info = self._metrics.get(query.name)
        if info is None:
            raise UnknownMetricError(query.name)
        expr = query_for(info, namespace, query.selector, max_age=self._settings.max_age,
                         default_quantile=self._settings.default_quantile)
        if expr is None or not pods:
            return []
        result = await self.query(expr)
        if not result:
            await self._check_honor_labels(info, namespace)
        by_pod = values_by_pod(result)
        out = []
        for pod in pods:
            samples = by_pod.get(pod, [])
            value = pick_one(namespace, pod, info.name, [v for _, v in samples])
            if value is not None:
                out.append(PodValue(namespace, pod, value, samples[0][0], info.window_seconds))
        return out
