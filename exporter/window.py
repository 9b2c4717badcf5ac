"""A target's readings over the sliding window, and what is derived from their deltas.

The store (``History``) holds timestamped readings; the derivations are pure
functions of a list of observations. Every counter is handled as its own series
(per engine, per bucket bound) with PromQL's reset rule, so a restarted vLLM never
yields a negative rate, and a window with no new observation yields no quantile.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from exporter.histogram import histogram_quantile, increase
from exporter.vllm_reading import PodReading


@dataclass(frozen=True, slots=True)
class Observation:
    at: float
    reading: PodReading


class History:
    """Readings of one target, oldest first, trimmed to the window ending at the newest."""

    def __init__(self, window_seconds: float) -> None:
        self.window = window_seconds
        self._items: deque[Observation] = deque()

    def add(self, at: float, reading: PodReading) -> None:
        if self._items and at <= self._items[-1].at:
            return  # a clock that does not advance adds no information
        self._items.append(Observation(at, reading))
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


def counter_rate(span: Sequence[Observation], model: str, name: str) -> float | None:
    """Per-second increase of a counter summed over the model's engines; None if unknowable."""
    if len(span) < 2:
        return None
    elapsed = span[-1].at - span[0].at
    if elapsed <= 0:
        return None
    total, seen = 0.0, False
    for key in _engine_keys(span, model):
        values = [v for o in span if (e := o.reading.engines.get(key)) and (v := e.counters.get(name)) is not None]
        if len(values) >= 2:
            total += increase(values)
            seen = True
    return total / elapsed if seen else None


def counter_increase(span: Sequence[Observation], model: str, name: str) -> float | None:
    rate = counter_rate(span, model, name)
    return None if rate is None else rate * (span[-1].at - span[0].at)


def window_buckets(span: Sequence[Observation], model: str, name: str) -> list[tuple[float, float]]:
    """``sum by (le) (increase(bucket[window]))`` over the model's engines."""
    summed: dict[float, float] = {}
    for key in _engine_keys(span, model):
        series: dict[float, list[float]] = {}
        for o in span:
            engine = o.reading.engines.get(key)
            hist = engine.histograms.get(name) if engine else None
            if hist is None:
                continue
            for bound, count in hist.buckets:
                series.setdefault(bound, []).append(count)
        for bound, values in series.items():
            if len(values) >= 2:
                summed[bound] = summed.get(bound, 0.0) + increase(values)
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


def _engine_keys(span: Sequence[Observation], model: str) -> list[tuple[str, str]]:
    keys: dict[tuple[str, str], None] = {}
    for o in span:
        for key in o.reading.engines:
            if key[0] == model:
                keys[key] = None
    return list(keys)
