"""What the plugin keeps and how it appears on vLLM's /metrics (stdlib and prometheus_client only).

``Windows`` holds one :class:`~exporter.vllm_plugin.window.LatencyWindow` per latency and one
peak window per engine; ``WindowsCollector`` is a prometheus_client custom collector that
computes the quantiles when /metrics is scraped. Names come from the vLLM name table
(:mod:`exporter.contract.vllm_names`), the quantiles from the catalog: the exporter reads
the same table. Names hold no colon, so neither text format 0.0.4 nor OpenMetrics rewrites them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.contract.catalog import QUANTILES
from exporter.contract.vllm_names import (
    ENGINE_FAULTS,
    ENGINE_KV_PEAK,
    ENGINE_OBSERVATIONS,
    ENGINE_QUANTILES,
    ENGINE_WINDOW,
)
from exporter.vllm_plugin.window import LatencyWindow, PeakWindow

DEFAULT_SECONDS = 60.0
"""The exporter's default window, so that both quantile sources cover the same time."""
DEFAULT_CAPACITY = 16384
"""Values kept per latency: 4 x 16384 x ~32 bytes (a pointer and the float it keeps alive) = 2 MiB at most."""


@dataclass
class Windows:
    """Everything the plugin keeps: raw latencies per kind, peak KV usage per engine, fault count."""

    model_name: str
    seconds: float = DEFAULT_SECONDS
    capacity: int = DEFAULT_CAPACITY
    clock: Callable[[], float] = time.monotonic
    latencies: dict[str, LatencyWindow] = field(init=False)
    kv_peaks: dict[int, PeakWindow] = field(default_factory=dict)
    faults: int = 0

    def __post_init__(self) -> None:
        self.latencies = {short: LatencyWindow(self.seconds, self.capacity) for short in ENGINE_QUANTILES}

    def engines(self, indexes: Sequence[int]) -> None:
        for index in indexes:
            self.kv_peaks.setdefault(index, PeakWindow(self.seconds, self.capacity))


class WindowsCollector(Collector):
    """Serves the windows' state as ``kvscale_engine_*`` gauges, computed at scrape time."""

    def __init__(self, windows: Windows, quantiles: Sequence[float] = QUANTILES) -> None:
        self.windows = windows
        self.quantiles = tuple(quantiles)

    def collect(self) -> Iterator[Metric]:
        w = self.windows
        now = w.clock()
        model = [w.model_name]
        counts = GaugeMetricFamily(ENGINE_OBSERVATIONS, "Raw values in kvscale's sliding window, by latency.",
                                   labels=["model_name", "latency"])
        for short, family in ENGINE_QUANTILES.items():
            n, values = w.latencies[short].quantiles(now, self.quantiles)
            counts.add_metric([*model, short], n)
            gauge = GaugeMetricFamily(family, f"Exact {short} quantiles of the raw values in kvscale's window "
                                      "(numpy's linear interpolation); absent when the window is empty.",
                                      labels=["model_name", "quantile"])
            for q, value in values.items():
                gauge.add_metric([*model, repr(float(q))], value)
            yield gauge
        yield counts
        yield _window(w)
        peaks = GaugeMetricFamily(ENGINE_KV_PEAK, "Largest KV-cache usage of the engine's steps in the window.",
                                  labels=["model_name", "engine"])
        for index, peak_window in sorted(w.kv_peaks.items()):
            peak = peak_window.peak(now)
            if peak is not None:
                peaks.add_metric([*model, str(index)], peak)
        yield peaks
        faults = CounterMetricFamily(ENGINE_FAULTS, "Calls the kvscale plugin failed on and skipped (logged once).",
                                     labels=["model_name"])
        faults.add_metric(model, w.faults)
        yield faults


def _window(w: Windows) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(ENGINE_WINDOW, "Length of kvscale's sliding window.", labels=["model_name"])
    gauge.add_metric([w.model_name], w.seconds)
    return gauge
