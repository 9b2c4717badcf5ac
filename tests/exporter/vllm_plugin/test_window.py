"""The plugin's sliding windows (pure): time bounds, the capacity bound, exact quantiles, peaks."""

from __future__ import annotations

import random

import numpy as np
import pytest

from exporter.vllm_plugin.window import LatencyWindow, PeakWindow, quantile


@pytest.mark.parametrize("values", [[3.0], [1.0, 2.0], [5.0, 1.0, 4.0, 2.0, 3.0], [0.1] * 7 + [9.0]])
@pytest.mark.parametrize("q", [0.0, 0.5, 0.9, 0.95, 0.99, 1.0])
def test_quantile_is_numpys_linear(values: list[float], q: float) -> None:
    assert quantile(sorted(values), q) == pytest.approx(float(np.quantile(values, q)), rel=1e-12)


@pytest.mark.parametrize(("batches", "now", "kept"), [
    ([(0.0, [1.0, 2.0]), (30.0, [3.0]), (59.0, [4.0])], 59.0, [1.0, 2.0, 3.0, 4.0]),
    ([(0.0, [1.0, 2.0]), (30.0, [3.0]), (59.0, [4.0])], 60.0, [3.0, 4.0]),  # (now - 60, now]: t=0 is out
    ([(0.0, [1.0, 2.0]), (30.0, [3.0]), (59.0, [4.0])], 119.5, []),
    ([(0.0, []), (1.0, [7.0])], 2.0, [7.0]),
])
def test_current_holds_what_was_recorded_within_the_window(batches: list[tuple[float, list[float]]], now: float,
                                                           kept: list[float]) -> None:
    window = LatencyWindow(60.0, 100)
    for at, values in batches:
        window.add(at, values)
    assert window.current(now) == kept


def test_the_capacity_bounds_memory_and_keeps_the_newest() -> None:
    window = LatencyWindow(60.0, 5)
    for i in range(12):
        window.add(float(i), [float(i), float(i) + 0.5])
    assert window.current(12.0) == [9.5, 10.0, 10.5, 11.0, 11.5]
    assert len(window._values) == 5 and len(window._batches) <= 5
    # Then time passes: the values of batches older than the window go, the rest stay.
    assert window.current(70.5) == [11.0, 11.5]
    assert window.current(71.0) == []


def test_quantiles_over_a_random_stream_equal_numpy_on_the_window() -> None:
    rng = random.Random(4)
    window = LatencyWindow(10.0, 1000)
    stream = [(t * 0.1, [rng.expovariate(2.0) for _ in range(rng.randrange(0, 4))]) for t in range(300)]
    for at, values in stream:
        window.add(at, values)
    inside = [v for at, values in stream if at > 29.9 - 10.0 for v in values]
    n, got = window.quantiles(29.9, (0.5, 0.95))
    assert n == len(inside)
    assert got == pytest.approx({q: float(np.quantile(inside, q)) for q in (0.5, 0.95)}, rel=1e-12)


def test_peak_is_the_largest_value_within_the_window() -> None:
    peak = PeakWindow(10.0, 100)
    for at, value in [(0.0, 0.5), (1.0, 0.9), (2.0, 0.3), (11.5, 0.4)]:
        peak.add(at, value)
    assert peak.peak(10.5) == 0.9
    assert peak.peak(11.5) == 0.4
    assert peak.peak(30.0) is None


def test_a_window_needs_room() -> None:
    with pytest.raises(ValueError, match="positive"):
        LatencyWindow(0.0, 10)
