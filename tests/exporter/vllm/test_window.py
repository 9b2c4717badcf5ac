"""Windowed rates and quantiles from successive readings, with counter resets."""

from __future__ import annotations

import math

import pytest

from exporter.vllm.reading import EngineReading, Histogram, PodReading
from exporter.vllm.window import History, counter_increase, counter_rate, window_buckets, window_quantiles

INF = math.inf


def reading(engines: dict[str, tuple[float, list[tuple[float, float]]]], model: str = "m") -> PodReading:
    """engine label -> (prompt_tokens counter, ttft buckets)."""
    out = PodReading()
    for engine, (tokens, buckets) in engines.items():
        out.engines[(model, engine)] = EngineReading(
            counters={"prompt_tokens": {(): tokens}}, histograms={"ttft": Histogram(tuple(buckets))})
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


A, B = (("reason", "max_num_queued_reqs"),), (("reason", "max_num_queued_tokens"),)


def rejections(**by_reason: float) -> PodReading:
    """The frontend's admission counter (no engine label), one series per reason given."""
    split = {"a": A, "b": B}
    out = PodReading()
    out.engines[("m", "")] = EngineReading(
        counters={"admission_rejections": {split[r]: v for r, v in by_reason.items()}})
    return out


@pytest.mark.parametrize(("scrapes", "want"), [
    # Restart between the 2nd and 3rd scrape: A falls 6 -> 1 while the sum rises 6 -> 8.
    # Per series: A 2 + 1, B 7 = 10 (the sum alone would say 8 - 4 = 4).
    ([{"a": 4, "b": 0}, {"a": 6, "b": 0}, {"a": 1, "b": 7}], 10),
    ([{"a": 1, "b": 0}, {"a": 3, "b": 1}, {"a": 5, "b": 2}], 6),
    # Both restart: each new value is its own increase.
    ([{"a": 10, "b": 10}, {"a": 2, "b": 3}], 5),
    # A absent from one scrape is absent, not a reset: 5 -> 9 is 4.
    ([{"a": 5, "b": 0}, {"b": 1}, {"a": 9, "b": 2}], 4 + 2),
    # ... and a drop across the gap is a restart: 3 counted from zero.
    ([{"a": 5, "b": 0}, {"b": 0}, {"a": 3, "b": 0}], 3),
    # A series appearing mid-window counts from its own first sample.
    ([{"b": 0}, {"a": 4, "b": 0}, {"a": 6, "b": 0}], 2),
    # A series that vanished still counts what it did in the window (PromQL's range).
    ([{"a": 2, "b": 0}, {"a": 5, "b": 0}, {"b": 1}], 3 + 1),
    # No series sampled twice in the window: unknowable, not 0.
    ([{"a": 1}, {"b": 2}], None),
])
def test_split_counters_get_the_reset_rule_per_series_then_sum(scrapes: list[dict[str, float]],
                                                               want: float | None) -> None:
    span = history(*((10.0 * i, rejections(**s)) for i, s in enumerate(scrapes))).span()
    assert counter_increase(span, "m", "admission_rejections") == want
    rate = counter_rate(span, "m", "admission_rejections")
    assert rate == (None if want is None else pytest.approx(want / (10.0 * (len(scrapes) - 1))))


@pytest.mark.parametrize(("scrapes", "want"), [
    # Window 60 s, scrapes at 0..80: at 80 the window holds 20..80. A's samples there are
    # 8 (20 s) and 9 (40 s; absent at 30 s): increase 1, never negative.
    ([{"a": 5}, {"a": 6}, {"a": 8}, {}, {"a": 9}, {"a": 9}, {}, {}, {"a": 9}], 1),
    # A gone for longer than the window is forgotten: it counts from its return.
    ([{"a": 5}, {}, {}, {}, {}, {}, {}, {"a": 2}, {"a": 3}], 1),
])
def test_gaps_never_make_an_increase_negative(scrapes: list[dict[str, float]], want: float) -> None:
    h = History(60)
    for i, s in enumerate(scrapes):
        h.add(10.0 * i, rejections(**s))
        got = counter_increase(h.span(), "m", "admission_rejections")
        assert got is None or got >= 0
    assert counter_increase(h.span(), "m", "admission_rejections") == want


def test_an_engine_that_vanished_still_counts_its_observations_in_the_window() -> None:
    both = reading({"0": (0, [(0.1, 0), (INF, 0)]), "1": (0, [(0.1, 0), (INF, 0)])})
    later = reading({"0": (0, [(0.1, 1), (INF, 1)]), "1": (0, [(0.1, 0), (INF, 3)])})
    gone = reading({"0": (0, [(0.1, 2), (INF, 2)])})
    span = history((0, both), (10, later), (20, gone)).span()
    assert window_buckets(span, "m", "ttft") == [(0.1, 2), (INF, 5)]
