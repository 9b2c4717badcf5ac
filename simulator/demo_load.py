"""The demo's spike scenario and its arrivals: Poisson at a base rate, a spike, back to base.

Arrivals are generated ahead in simulated time from a seeded generator and handed to the fleet's
router as the clock reaches them, so a run's traffic depends on the seed only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from simulator.engine import Request

SPIKE_START = 0.15  # fractions of the scenario
SPIKE_END = 0.55


@dataclass(frozen=True)
class SpikeScenario:
    length: float
    base_rate: float
    spike_rate: float
    prompt_tokens: tuple[int, int] = (200, 1000)  # uniform range: chat turns with some context
    output_tokens: tuple[int, int] = (100, 400)

    def __post_init__(self) -> None:
        if self.length <= 0 or self.base_rate < 0 or self.spike_rate < 0:
            raise ValueError("scenario length must be > 0 and rates >= 0")

    @property
    def spike_at(self) -> float:
        return self.length * SPIKE_START

    @property
    def spike_end(self) -> float:
        return self.length * SPIKE_END

    def rate(self, t: float) -> float:
        return self.spike_rate if self.spike_at <= t < self.spike_end else self.base_rate

    def phase(self, t: float) -> str:
        if t < self.spike_at:
            return "baseline"
        return "SPIKE" if t < self.spike_end else "after the spike"


class Arrivals:
    """Poisson arrivals of the scenario; ``due(now)`` returns the requests that arrived by ``now``."""

    def __init__(self, scenario: SpikeScenario, seed: int) -> None:
        self.scenario = scenario
        self._rng = random.Random(seed)
        self._next = self._after(0.0)
        self.count = 0

    def _after(self, t: float) -> float:
        # Piecewise-constant rate: draw in the current piece; crossing a boundary redraws from it.
        while True:
            rate = self.scenario.rate(t)
            boundary = next((b for b in (self.scenario.spike_at, self.scenario.spike_end) if b > t), float("inf"))
            candidate = t + self._rng.expovariate(rate) if rate > 0 else float("inf")
            if candidate < boundary:
                return candidate
            if boundary == float("inf"):
                return candidate
            t = boundary

    def due(self, now: float) -> list[Request]:
        out = []
        lo_p, hi_p = self.scenario.prompt_tokens
        lo_o, hi_o = self.scenario.output_tokens
        while self._next <= now:
            out.append(Request(prompt_tokens=self._rng.randint(lo_p, hi_p),
                               output_tokens=self._rng.randint(lo_o, hi_o), arrival=self._next))
            self._next = self._after(self._next)
        self.count += len(out)
        return out
