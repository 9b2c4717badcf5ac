"""histogram_quantile and counter steps, table-driven against PromQL's rules (Prometheus 2.42)."""

from __future__ import annotations

import math

import pytest

from exporter.vllm.histogram import counter_step, histogram_quantile

INF = math.inf


@pytest.mark.parametrize(("q", "buckets", "want"), [
    # Linear interpolation inside the bucket holding the rank.
    (0.5, [(0.1, 0), (0.5, 10), (INF, 10)], 0.3),
    (1.0, [(0.1, 0), (0.5, 10), (INF, 10)], 0.5),
    (0.9, [(1, 2), (2, 6), (4, 10), (INF, 10)], 2 + 2 * ((9 - 6) / 4)),
    # The first bucket interpolates from 0.
    (0.5, [(0.5, 4), (INF, 4)], 0.25),
    # Rank in the +Inf bucket: the highest finite bound.
    (0.5, [(1, 0), (INF, 5)], 1.0),
    (0.99, [(1, 90), (2, 98), (INF, 100)], 2.0),
    # A first bound <= 0 is returned as is.
    (0.25, [(-1, 2), (INF, 4)], -1.0),
    # Unsorted input is sorted; equal bounds are merged.
    (0.5, [(INF, 10), (0.5, 10), (0.1, 0)], 0.3),
    (0.5, [(0.5, 2), (0.5, 2), (INF, 4)], 0.25),
    # Non-monotonic counts (per-bucket resets) are lifted to the running maximum.
    (0.5, [(0.1, 5), (0.5, 3), (INF, 6)], 0.06),
])
def test_quantile_interpolates_like_promql(q: float, buckets: list[tuple[float, float]], want: float) -> None:
    assert histogram_quantile(q, buckets) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize(("q", "buckets", "want"), [
    (0.5, [], "nan"),
    (0.5, [(0.1, 1), (0.5, 2)], "nan"),  # no +Inf bucket
    (0.5, [(INF, 3)], "nan"),  # fewer than two buckets
    (0.5, [(0.1, 0), (INF, 0)], "nan"),  # no observations
    (0.5, [(0.1, 0), (INF, 5e-324)], "nan"),  # the rank rounds to 0 in an empty bucket: 0/0 as Go computes it
    (0.0, [(0.1, 0), (1, 4), (INF, 4)], "nan"),
    (math.nan, [(0.1, 1), (INF, 1)], "nan"),
    (-0.1, [(0.1, 1), (INF, 1)], "-inf"),
    (1.1, [(0.1, 1), (INF, 1)], "inf"),
])
def test_quantile_edge_cases(q: float, buckets: list[tuple[float, float]], want: str) -> None:
    got = histogram_quantile(q, buckets)
    if want == "nan":
        assert math.isnan(got)
    else:
        assert got == float(want)


@pytest.mark.parametrize(("previous", "value", "want"), [
    (None, 7.0, 0.0),  # a series' first sample
    (3.0, 3.0, 0.0),
    (1.0, 2.5, 1.5),
    # A drop is a restart from zero: the new value is the increment.
    (5.0, 1.0, 1.0),
    (110.0, 5.0, 5.0),
    (10.0, 0.0, 0.0),
])
def test_counter_step_handles_resets(previous: float | None, value: float, want: float) -> None:
    assert counter_step(previous, value) == want
