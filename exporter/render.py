"""Series of one cycle -> the text exposition (format 0.0.4), rendered once per cycle.

``SnapshotCollector`` is a client_python collector that is a pure projection of
the last cycle's series onto metric families, in catalog order, with HELP from
the catalog. It lives in a registry passed in, never the global one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.collector import Series, check_series
from exporter.contract.catalog import FAMILIES, Family

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class SnapshotCollector:
    """Yields the families of the current snapshot (replaced atomically each cycle)."""

    def __init__(self) -> None:
        self._series: Sequence[Series] = ()

    def update(self, series: Sequence[Series]) -> None:
        check_series(series)
        self._series = tuple(series)

    def collect(self) -> Iterable[Metric]:
        by_family: dict[str, list[Series]] = {}
        for s in self._series:
            by_family.setdefault(s.family, []).append(s)
        for fam in FAMILIES:
            members = by_family.get(fam.name)
            if members:
                yield _family(fam, members)


def _family(fam: Family, members: list[Series]) -> Metric:
    metric: GaugeMetricFamily | CounterMetricFamily
    if fam.type == "counter":
        metric = CounterMetricFamily(fam.name, fam.help, labels=fam.labels)
    else:
        metric = GaugeMetricFamily(fam.name, fam.help, labels=fam.labels)
    seen: set[tuple[str, ...]] = set()
    for s in members:
        values = tuple(s.labels.get(label, "") for label in fam.labels)
        if values in seen:
            continue  # the first series of a cycle wins; a duplicate would be rejected by Prometheus
        seen.add(values)
        metric.add_metric(list(values), s.value)
    return metric


def render(registry: CollectorRegistry) -> bytes:
    """Text format 0.0.4 always: OpenMetrics negotiation would rewrite names (client_python #1177)."""
    return generate_latest(registry)


def new_registry(snapshot: SnapshotCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(snapshot)
    return registry
