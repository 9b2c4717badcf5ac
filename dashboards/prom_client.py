"""A minimal Prometheus HTTP API client for the preview: range and instant queries.

I/O only; what the answers mean is the preview's business. Every failure is one
``PrometheusError`` with the cause chained, so a caller can show it on the panel.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any


class PrometheusError(RuntimeError):
    """Prometheus could not be reached or rejected the query; the message says which."""


@dataclass(frozen=True)
class Series:
    """One result series: its labels and its (unix seconds, value) points."""

    labels: dict[str, str]
    points: tuple[tuple[float, float], ...]


def parse_result(body: dict[str, Any]) -> list[Series]:
    """Series from an API answer (matrix or vector); NaN and Inf values are kept as floats."""
    if body.get("status") != "success":
        raise PrometheusError(f"{body.get('errorType', 'error')}: {body.get('error', body)}")
    data = body.get("data", {})
    kind, result = data.get("resultType"), data.get("result", [])
    if kind == "scalar":
        return [Series({}, ((float(result[0]), float(result[1])),))]
    series = []
    for item in result:
        raw = item.get("values") if kind == "matrix" else [item.get("value")]
        series.append(Series(dict(item.get("metric", {})), tuple((float(t), float(v)) for t, v in raw or [])))
    return series


@dataclass(frozen=True)
class PrometheusClient:
    """Talks to one Prometheus at ``base_url`` (e.g. ``http://127.0.0.1:9090``)."""

    base_url: str
    timeout: float = 30.0

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        url = f"{self.base_url.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:
                body: dict[str, Any] = json.load(resp)
        except urllib.error.HTTPError as exc:
            # Prometheus answers a bad query with 400 and a JSON body that says why.
            try:
                body = json.loads(exc.read().decode("utf-8", "replace"))
            except ValueError:
                raise PrometheusError(f"{url}: HTTP {exc.code}") from exc
        except (OSError, ValueError) as exc:
            raise PrometheusError(f"cannot query {self.base_url}: {exc}") from exc
        return body

    def query_range(self, expr: str, *, start: float, end: float, step: float) -> list[Series]:
        body = self._get("/api/v1/query_range",
                         {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"})
        return parse_result(body)

    def query(self, expr: str, *, at: float) -> list[Series]:
        return parse_result(self._get("/api/v1/query", {"query": expr, "time": f"{at:.3f}"}))
