"""A target's readings over the sliding window, and what is derived from their deltas.

The store (``History``) holds timestamped readings; the derivations are pure
functions of a list of observations. Increases follow PromQL's ``increase()`` per
series, then are summed (``sum(increase(x[w]))``, without the boundary extrapolation):

- a series is one engine's counter with one set of split labels (a ``reason``), or
  one engine's histogram bucket; the reset rule (a drop means a restart from zero)
  holds per series, so a restart is seen even when a sum over reasons does not fall;
- a series absent from a scrape is absent, not a reset: its next sample continues
  from its last one, and a series that vanished still counts the increase of the
  samples it left in the window;
- a series counts from its own first sample in the window; one with a single sample
  in the window adds nothing, and with no series sampled twice the increase is unknown;
- each histogram bucket is a series of its own: a bucket missing from the newest scrape
  still counts the increase of its samples in the window, rather than dropping out of the
  distribution (which moved a p50 from 0.07 s to 1.0 s);
- an increase is never negative: each series' running total only grows.

Only the newest observation keeps its reading (the gauges and cache config are read
from it alone); older ones keep their running totals, so the window holds what the
derivations need rather than every body.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from exporter.vllm.histogram import counter_step, histogram_quantile
from exporter.vllm.reading import EngineKey, PodReading, Split

CounterKey = tuple[EngineKey, str, Split]
"""(engine key, short name of a counter, its split labels)."""
HistogramKey = tuple[EngineKey, str]
"""(engine key, short name of a histogram)."""
BucketKey = tuple[HistogramKey, float]
"""A histogram and one bucket's upper bound."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Observation:
    """A reading, plus every counter and bucket as a reset-corrected running total.

    A running total only ever grows: each step adds ``v - prev`` or, after a drop (a
    restart from zero), ``v``. The increase of a series between two observations is
    then a subtraction, which keeps a cycle O(series) instead of O(series x window).
    """

    at: float
    reading: PodReading
    counters: dict[CounterKey, float]
    buckets: dict[HistogramKey, dict[float, float]]
    gone_counters: frozenset[CounterKey] = field(default=frozenset())
    """Counters absent from this reading that still have samples in the window."""
    gone_histograms: frozenset[HistogramKey] = field(default=frozenset())


@dataclass(slots=True)
class _Track:
    """One series' last raw sample, its running total, and when it was last seen."""

    raw: float
    total: float
    seen: float


def _advance(tracks: dict[K, _Track], key: K, value: float, at: float) -> float:
    """The series' running total after this sample (0 at its first)."""
    track = tracks.get(key)
    if track is None:
        tracks[key] = _Track(value, 0.0, at)
        return 0.0
    track.total += counter_step(track.raw, value)
    track.raw, track.seen = value, at
    return track.total


class History:
    """Readings of one target, oldest first, trimmed to the window ending at the newest."""

    def __init__(self, window_seconds: float) -> None:
        self.window = window_seconds
        self._items: deque[Observation] = deque()
        # Kept while the series has a sample in the window, so a gap is not a reset;
        # forgotten once its last sample leaves it (bounded memory under churn).
        self._counters: dict[CounterKey, _Track] = {}
        self._buckets: dict[BucketKey, _Track] = {}

    def add(self, at: float, reading: PodReading) -> None:
        if self._items and at <= self._items[-1].at:
            return  # a clock that does not advance adds no information
        counters: dict[CounterKey, float] = {}
        buckets: dict[HistogramKey, dict[float, float]] = {}
        for engine_key, engine in reading.engines.items():
            for name, series in engine.counters.items():
                for split, value in series.items():
                    key = (engine_key, name, split)
                    counters[key] = _advance(self._counters, key, value, at)
            for name, hist in engine.histograms.items():
                hkey = (engine_key, name)
                buckets[hkey] = {bound: _advance(self._buckets, (hkey, bound), count, at)
                                 for bound, count in hist.buckets}
        start = at - self.window
        _forget_before(self._counters, start)
        _forget_before(self._buckets, start)
        gone_counters = frozenset(k for k in self._counters if k not in counters)
        gone_histograms = frozenset(k[0] for k in self._buckets if k[0] not in buckets)
        if self._items:  # the previous reading's gauges are superseded: keep its totals only
            self._items[-1] = replace(self._items[-1], reading=_SUPERSEDED)
        self._items.append(Observation(at, reading, counters, buckets, gone_counters, gone_histograms))
        while self._items[0].at < start:
            self._items.popleft()

    def span(self) -> list[Observation]:
        """Observations covering the window that ends at the newest one."""
        return list(self._items)

    def latest(self) -> Observation | None:
        return self._items[-1] if self._items else None

    def __len__(self) -> int:
        return len(self._items)


_SUPERSEDED = PodReading()
"""The reading of every observation but the newest (never mutated)."""


def _forget_before(tracks: dict[K, _Track], start: float) -> None:
    for stale in [key for key, track in tracks.items() if track.seen < start]:
        del tracks[stale]


def _first_and_last(span: Sequence[Observation], key: K,
                    values: Callable[[Observation], Mapping[K, V]]) -> tuple[V, V] | None:
    """The series' running totals at its first and last sample in the span; None under two samples."""
    first = next((i for i, obs in enumerate(span) if key in values(obs)), None)
    last = next((i for i in range(len(span) - 1, -1, -1) if key in values(span[i])), None)
    if first is None or last is None or last <= first:
        return None
    return values(span[first])[key], values(span[last])[key]


def _counter_keys(last: Observation, model: str, name: str) -> list[CounterKey]:
    return [k for group in (last.counters, last.gone_counters) for k in group if k[0][0] == model and k[1] == name]


def _histogram_keys(last: Observation, model: str, name: str) -> list[HistogramKey]:
    return [k for group in (last.buckets, last.gone_histograms) for k in group if k[0][0] == model and k[1] == name]


def counter_increase(span: Sequence[Observation], model: str, name: str) -> float | None:
    """``sum(increase(counter[window]))`` over the model's engines and splits; None if unknowable."""
    if len(span) < 2:
        return None
    last = span[-1]
    total, seen = 0.0, False
    for key in _counter_keys(last, model, name):
        pair = _first_and_last(span, key, lambda obs: obs.counters)
        if pair is not None:
            total += pair[1] - pair[0]
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
    for key in _histogram_keys(span[-1], model, name):
        # Each bucket is a series of its own: one missing from a scrape is a gap in that bucket only.
        per_scrape = [obs.buckets.get(key, _NO_BUCKETS) for obs in span]
        for bound in {bound for buckets in per_scrape for bound in buckets}:
            first = next(b[bound] for b in per_scrape if bound in b)
            final = next(b[bound] for b in reversed(per_scrape) if bound in b)
            summed[bound] = summed.get(bound, 0.0) + final - first  # one sample: adds 0
    return sorted(summed.items())


_NO_BUCKETS: dict[float, float] = {}


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
