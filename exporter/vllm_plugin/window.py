"""Fixed-size sliding windows of raw observations (pure, stdlib only).

``record`` runs inside vLLM's output loop, so it only appends: a batch of values goes into
a bounded deque in one C call, and the batch's time and end position into another. The
work of a scrape (trimming to the window, sorting, interpolating) happens in ``quantiles``
and ``peak``, called from the /metrics handler. Memory is bounded by the capacity whatever
the traffic: past it the oldest values fall out, and ``span`` then says the window holds
less time than asked (the count is exposed beside the quantiles).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence


def quantile(ordered: Sequence[float], q: float) -> float:
    """numpy's default (``linear``) quantile of sorted values: ``x[h] + frac(h)(x[h+1] - x[h])``, h = q(n-1)."""
    h = q * (len(ordered) - 1)
    low = math.floor(h)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (h - low) * (ordered[high] - ordered[low])


class LatencyWindow:
    """The last ``capacity`` observations of one latency, each stamped with the time it was recorded."""

    __slots__ = ("_batches", "_cut", "_total", "_values", "capacity", "seconds")

    def __init__(self, seconds: float, capacity: int) -> None:
        if seconds <= 0 or capacity < 1:
            raise ValueError(f"a window needs positive seconds and capacity, got {seconds}, {capacity}")
        self.seconds, self.capacity = seconds, capacity
        self._values: deque[float] = deque(maxlen=capacity)
        self._batches: deque[tuple[float, int]] = deque(maxlen=capacity)
        """(time, values appended in total after the batch): where each batch ends."""
        self._total = 0
        self._cut = 0
        """Where the newest batch dropped for its age ended: values before it are out of the window."""

    def add(self, at: float, values: Sequence[float]) -> None:
        """Append one batch (a step's TTFTs, say) recorded at ``at``; an empty batch costs nothing."""
        if values:
            self._values.extend(values)
            self._total += len(values)
            batches = self._batches
            batches.append((at, self._total))
            if batches[0][1] <= self._total - len(self._values):
                batches.popleft()  # its values fell out at the capacity: its stamp is of no use

    def add_one(self, at: float, value: float) -> None:
        self.add(at, (value,))

    def current(self, now: float) -> list[float]:
        """The values recorded in ``(now - seconds, now]``, oldest first."""
        cutoff = now - self.seconds
        batches = self._batches
        while batches and batches[0][0] <= cutoff:
            self._cut = batches.popleft()[1]
        values = self._values
        # Every kept value lies in a kept batch or one dropped for its age: the capacity bounds both
        # deques and each batch holds at least one value, so a batch lost to the bound lost its values.
        first_kept = self._total - len(values)
        for _ in range(max(first_kept, self._cut) - first_kept):
            values.popleft()
        return list(values)

    def quantiles(self, now: float, qs: Iterable[float]) -> tuple[int, dict[float, float]]:
        """How many values the window holds, and their exact quantiles (none when it is empty)."""
        ordered = sorted(self.current(now))
        if not ordered:
            return 0, {}
        return len(ordered), {q: quantile(ordered, q) for q in qs}


class PeakWindow:
    """The largest value over a sliding window, by a monotonic deque (amortized O(1) per step)."""

    __slots__ = ("_items", "seconds")

    def __init__(self, seconds: float, capacity: int) -> None:
        self.seconds = seconds
        self._items: deque[tuple[float, float]] = deque(maxlen=capacity)
        """(time, value), values strictly decreasing: a value below a later one can never be the peak."""

    def add(self, at: float, value: float) -> None:
        items = self._items
        while items and items[-1][1] <= value:
            items.pop()
        items.append((at, value))

    def peak(self, now: float) -> float | None:
        cutoff = now - self.seconds
        items = self._items
        while items and items[0][0] <= cutoff:
            items.popleft()
        return items[0][1] if items else None
