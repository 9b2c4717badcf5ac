"""The adapter's own metrics: requests by route and code, latency, and source freshness.

A registry is passed in (never the global one), so tests and several adapters in
one process stay independent. Freshness is read at scrape time from a callback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector

FreshnessSource = Callable[[], Mapping[str, float]]


class _Freshness(Collector):
    def __init__(self, source: FreshnessSource) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "kvscale_adapter_metric_freshness_seconds",
            "Seconds since the source last answered, per source endpoint (direct: each exporter; "
            "prometheus: the query API).", labels=["source"])
        for source, age in sorted(self._source().items()):
            family.add_metric([source], age)
        yield family


class _Connections(Collector):
    def __init__(self, source: Callable[[], tuple[int, int, int]]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        open_, refused, evicted = self._source()
        yield GaugeMetricFamily("kvscale_adapter_connections_open",
                                "Client connections held, counted from the TCP accept.", value=open_)
        closed = CounterMetricFamily("kvscale_adapter_connections_closed",
                                     "Connections closed at the --max-connections cap: refused (every connection "
                                     "busy) or displaced (the one idle longest, to admit a new one).",
                                     labels=["reason"])
        closed.add_metric(["refused"], refused)
        closed.add_metric(["displaced"], evicted)
        yield closed


class SelfMetrics:
    def __init__(self, *, registry: CollectorRegistry, freshness: FreshnessSource | None = None) -> None:
        self._registry = registry
        self._requests = Counter("kvscale_adapter_requests_total", "API requests served, by route and HTTP code.",
                                 ["route", "code"], registry=registry)
        self._latency = Histogram("kvscale_adapter_request_duration_seconds",
                                  "Time to answer an API request, by route.", ["route"], registry=registry,
                                  buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        if freshness is not None:
            registry.register(_Freshness(freshness))

    def watch_connections(self, source: Callable[[], tuple[int, int, int]]) -> None:
        """Publish (open, refused, displaced) connection counts, read at scrape time."""
        self._registry.register(_Connections(source))

    def observe(self, route: str, code: int, seconds: float) -> None:
        self._requests.labels(route, str(code)).inc()
        self._latency.labels(route).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self._registry), CONTENT_TYPE_PLAIN_0_0_4
