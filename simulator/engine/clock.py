"""Simulated time: a virtual clock for what-if runs, a wall clock scaled by a speed factor for the demo.

Every part reads simulated seconds from one clock, so compressing time (``speed=10``:
one wall second is ten simulated seconds) stays consistent: step times, cold starts,
the counters on /metrics and their ``_created`` stamps all advance together.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Simulated seconds since the simulation started."""
        ...

    def unix(self, sim_seconds: float) -> float:
        """The Unix time a simulated instant reads as (``_created`` gauges)."""
        ...


class VirtualClock:
    """Moves only when told: the what-if simulator jumps it from event to event."""

    def __init__(self, start: float = 0.0, epoch: float = 1_800_000_000.0) -> None:
        self._now = start
        self.epoch = epoch

    def now(self) -> float:
        return self._now

    def advance_to(self, t: float) -> None:
        if t < self._now:
            raise ValueError(f"virtual clock cannot go back from {self._now} to {t}")
        self._now = t

    def unix(self, sim_seconds: float) -> float:
        return self.epoch + sim_seconds


class ScaledClock:
    """Wall time times ``speed`` since construction (speed 1 = real time)."""

    def __init__(self, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = speed
        self._wall0 = time.monotonic()
        self.epoch = time.time()

    def now(self) -> float:
        return (time.monotonic() - self._wall0) * self.speed

    def wall_seconds(self, sim_seconds: float) -> float:
        """How long a simulated duration takes on the wall clock."""
        return sim_seconds / self.speed

    def unix(self, sim_seconds: float) -> float:
        return self.epoch + sim_seconds
