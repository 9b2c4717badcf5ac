"""Counter increases with reset handling, and PromQL's histogram_quantile.

Pure. Both follow Prometheus 2.42 (the server kvscale is tested against) so that
the exporter's windowed quantiles agree with ``histogram_quantile(q, sum by (le)
(increase(...)))`` on the same data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Buckets = Sequence[tuple[float, float]]
"""(upper bound, cumulative count), any order."""


def counter_step(previous: float | None, value: float) -> float:
    """Increment of a counter from one sample to the next; never negative.

    A drop means the counter restarted from zero, so the new value is itself the
    increment (PromQL's rule). The first sample of a series has no increment.
    """
    if previous is None:
        return 0.0
    return value - previous if value >= previous else value


def histogram_quantile(q: float, buckets: Buckets) -> float:
    """PromQL's ``histogram_quantile`` for classic buckets (Prometheus 2.42 ``bucketQuantile``).

    Returns NaN when the quantile is undefined (no +Inf bucket, fewer than two buckets,
    no observations): callers turn NaN into an absent series, never a number.
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = _coalesce(sorted(buckets, key=lambda b: b[0]))
    if not ordered or not math.isinf(ordered[-1][0]):
        return math.nan
    _ensure_monotonic(ordered)
    if len(ordered) < 2:
        return math.nan
    observations = ordered[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    # First bucket (excluding +Inf) whose count reaches the rank, as Go's sort.Search.
    b = next((i for i in range(len(ordered) - 1) if ordered[i][1] >= rank), len(ordered) - 1)
    if b == len(ordered) - 1:
        return ordered[-2][0]
    if b == 0 and ordered[0][0] <= 0:
        return ordered[0][0]
    bucket_start = 0.0
    bucket_end = ordered[b][0]
    count = ordered[b][1]
    if b > 0:
        bucket_start = ordered[b - 1][0]
        count -= ordered[b - 1][1]
        rank -= ordered[b - 1][1]
    if count == 0:  # rank 0 in an empty bucket (q * a subnormal total rounds to 0): Go's 0/0 is NaN
        return math.nan
    return bucket_start + (bucket_end - bucket_start) * (rank / count)


def _coalesce(ordered: list[tuple[float, float]]) -> list[list[float]]:
    """Merge buckets with the same bound (summing counts), as Prometheus does."""
    out: list[list[float]] = []
    for bound, count in ordered:
        if out and out[-1][0] == bound:
            out[-1][1] += count
        else:
            out.append([bound, count])
    return out


def _ensure_monotonic(ordered: list[list[float]]) -> None:
    """Counts must not decrease with the bound; a dip (per-bucket resets) is lifted."""
    highest = -math.inf
    for bucket in ordered:
        if bucket[1] > highest:
            highest = bucket[1]
        elif bucket[1] < highest:
            bucket[1] = highest
