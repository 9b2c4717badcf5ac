"""A target's readings over the sliding window, and what is derived from their deltas.

The store (``History``) holds timestamped readings; the derivations are pure
functions of a list of observations. Every counter is handled as its own series
(per engine, per bucket bound) with PromQL's reset rule, so a restarted vLLM never
yields a negative rate, and a window with no new observation yields no quantile.
A series that appears mid-window counts from its own first sample, as in PromQL.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from exporter.vllm.histogram import counter_step, histogram_quantile
from exporter.vllm.reading import EngineKey, PodReading

SeriesKey = tuple[EngineKey, str]
"""(engine key, short name of a counter or histogram)."""


@dataclass(frozen=True, slots=True)
class Observation:
    """A reading, plus every counter and bucket as a reset-corrected running total.

    A running total only ever grows: each step adds ``v - prev`` or, after a drop (a
    restart from zero), ``v``. The increase of a series between two observations is
    then a subtraction, which keeps a cycle O(series) instead of O(series x window).
    """

    at: float
    reading: PodReading
    counters: dict[SeriesKey, float]
    buckets: dict[SeriesKey, dict[float, float]]


class History:
    """Readings of one target, oldest first, trimmed to the window ending at the newest."""

    def __init__(self, window_seconds: float) -> None:
        self.window = window_seconds
        self._items: deque[Observation] = deque()
        self._raw_counters: dict[SeriesKey, float] = {}
        self._raw_buckets: dict[SeriesKey, dict[float, float]] = {}

    def add(self, at: float, reading: PodReading) -> None:
        if self._items and at <= self._items[-1].at:
            return  # a clock that does not advance adds no information
        last = self._items[-1] if self._items else None
        counters: dict[SeriesKey, float] = {}
        buckets: dict[SeriesKey, dict[float, float]] = {}
        raw_counters: dict[SeriesKey, float] = {}
        raw_buckets: dict[SeriesKey, dict[float, float]] = {}
        for engine_key, engine in reading.engines.items():
            for name, value in engine.counters.items():
                key = (engine_key, name)
                before = last.counters.get(key, 0.0) if last else 0.0
                counters[key] = before + counter_step(self._raw_counters.get(key), value)
                raw_counters[key] = value
            for name, hist in engine.histograms.items():
                key = (engine_key, name)
                raw_before = self._raw_buckets.get(key, {})
                total_before = last.buckets.get(key, {}) if last else {}
                buckets[key] = {bound: total_before.get(bound, 0.0) + counter_step(raw_before.get(bound), count)
                                for bound, count in hist.buckets}
                raw_buckets[key] = dict(hist.buckets)
        # Series absent from this reading are forgotten (bounded memory under churn).
        self._raw_counters, self._raw_buckets = raw_counters, raw_buckets
        self._items.append(Observation(at, reading, counters, buckets))
        start = at - self.window
        while self._items[0].at < start:
            self._items.popleft()

    def span(self) -> list[Observation]:
        """Observations covering the window that ends at the newest one."""
        return list(self._items)

    def latest(self) -> Observation | None:
        return self._items[-1] if self._items else None

    def __len__(self) -> int:
        return len(self._items)


def _first_with(span: Sequence[Observation], key: SeriesKey, histogram: bool) -> Observation | None:
    for obs in span[:-1]:
        if key in (obs.buckets if histogram else obs.counters):
            return obs
    return None


def counter_increase(span: Sequence[Observation], model: str, name: str) -> float | None:
    """Increase of a counter over the window, summed over the model's engines; None if unknowable."""
    if len(span) < 2:
        return None
    last, total, seen = span[-1], 0.0, False
    for key, value in last.counters.items():
        if key[0][0] != model or key[1] != name:
            continue
        first = _first_with(span, key, histogram=False)
        if first is not None:
            total += value - first.counters[key]
            seen = True
    return total if seen else None


def counter_rate(span: Sequence[Observation], model: str, name: str) -> float | None:
    """Per-second increase of a counter summed over the model's engines; None if unknowable."""
    increase = counter_increase(span, model, name)
    if increase is None:
        return None
    elapsed = span[-1].at - span[0].at
    return increase / elapsed if elapsed > 0 else None


def window_buckets(span: Sequence[Observation], model: str, name: str) -> list[tuple[float, float]]:
    """``sum by (le) (increase(bucket[window]))`` over the model's engines."""
    summed: dict[float, float] = {}
    if len(span) < 2:
        return []
    last = span[-1]
    for key, totals in last.buckets.items():
        if key[0][0] != model or key[1] != name:
            continue
        first = _first_with(span, key, histogram=True)
        if first is None:
            continue
        before = first.buckets[key]
        for bound, total in totals.items():
            summed[bound] = summed.get(bound, 0.0) + total - before.get(bound, 0.0)
    return sorted(summed.items())


def window_quantiles(span: Sequence[Observation], model: str, name: str,
                     quantiles: Sequence[float]) -> dict[float, float]:
    """Quantiles of the observations made in the window; empty when there were none."""
    buckets = window_buckets(span, model, name)
    out: dict[float, float] = {}
    for q in quantiles:
        value = histogram_quantile(q, buckets)
        if not math.isnan(value):
            out[q] = value
    return out
