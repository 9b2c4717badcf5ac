"""Windowed rates and quantiles from successive readings, with counter resets."""

from __future__ import annotations

import math

import pytest

from exporter.vllm.reading import EngineReading, Histogram, PodReading
from exporter.vllm.window import History, counter_rate, window_buckets, window_quantiles

INF = math.inf


def reading(engines: dict[str, tuple[float, list[tuple[float, float]]]], model: str = "m") -> PodReading:
    """engine label -> (prompt_tokens counter, ttft buckets)."""
    out = PodReading()
    for engine, (tokens, buckets) in engines.items():
        out.engines[(model, engine)] = EngineReading(
            counters={"prompt_tokens": tokens}, histograms={"ttft": Histogram(tuple(buckets))})
    return out


def history(*points: tuple[float, PodReading], window: float = 60) -> History:
    h = History(window)
    for at, r in points:
        h.add(at, r)
    return h


def test_history_keeps_only_the_window_and_ignores_a_stalled_clock() -> None:
    h = history(*((t, reading({"0": (t, [(INF, t)])})) for t in (0, 10, 20, 70, 80)))
    assert [o.at for o in h.span()] == [20, 70, 80]
    h.add(80, reading({}))
    assert len(h) == 3


@pytest.mark.parametrize(("values", "want"), [
    ([100, 110, 120], 20 / 20),
    # A restart between 10 s and 20 s: 10 before, then 5 from zero, then 10 more.
    ([100, 110, 5, 15], 25 / 30),
    ([50, 50, 50], 0.0),
])
def test_counter_rate_sums_increments_with_resets(values: list[float], want: float) -> None:
    h = history(*((10.0 * i, reading({"0": (v, [(INF, 0)])})) for i, v in enumerate(values)))
    rate = counter_rate(h.span(), "m", "prompt_tokens")
    assert rate == pytest.approx(want)
    assert rate is not None and rate >= 0


def test_counter_rate_is_unknowable_from_one_reading_or_another_model() -> None:
    h = history((0, reading({"0": (1, [(INF, 0)])})))
    assert counter_rate(h.span(), "m", "prompt_tokens") is None
    h.add(10, reading({"0": (2, [(INF, 0)])}))
    assert counter_rate(h.span(), "other", "prompt_tokens") is None


def test_engines_are_summed_per_bucket_before_the_quantile() -> None:
    first = reading({"0": (0, [(0.1, 10), (1, 10), (INF, 10)]), "1": (0, [(0.1, 0), (1, 0), (INF, 0)])})
    # In the window engine 0 saw 2 fast requests, engine 1 saw 2 slow ones.
    second = reading({"0": (0, [(0.1, 12), (1, 12), (INF, 12)]), "1": (0, [(0.1, 0), (1, 2), (INF, 2)])})
    span = history((0, first), (10, second)).span()
    assert window_buckets(span, "m", "ttft") == [(0.1, 2), (1, 4), (INF, 4)]
    got = window_quantiles(span, "m", "ttft", (0.5, 0.95))
    assert got[0.5] == pytest.approx(0.1)
    assert got[0.95] == pytest.approx(0.1 + 0.9 * ((3.8 - 2) / 2))


def test_no_observation_in_the_window_gives_no_quantile() -> None:
    same = reading({"0": (0, [(0.1, 5), (INF, 5)])})
    span = history((0, same), (10, same)).span()
    assert window_quantiles(span, "m", "ttft", (0.5, 0.99)) == {}


def test_histogram_reset_counts_new_observations_only() -> None:
    before = reading({"0": (0, [(0.1, 100), (1, 100), (INF, 100)])})
    restarted = reading({"0": (0, [(0.1, 0), (1, 3), (INF, 3)])})
    span = history((0, before), (10, restarted)).span()
    assert window_buckets(span, "m", "ttft") == [(0.1, 0), (1, 3), (INF, 3)]
    assert window_quantiles(span, "m", "ttft", (0.5,))[0.5] == pytest.approx(0.1 + 0.9 * 0.5)


def test_an_engine_that_appears_mid_window_counts_from_its_own_first_sample() -> None:
    one = reading({"0": (10, [(INF, 0)])})
    two = reading({"0": (20, [(INF, 0)]), "1": (1000, [(INF, 0)])})
    three = reading({"0": (30, [(INF, 0)]), "1": (1010, [(INF, 0)])})
    span = history((0, one), (10, two), (20, three)).span()
    assert counter_rate(span, "m", "prompt_tokens") == pytest.approx((20 + 10) / 20)
