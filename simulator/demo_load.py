"""The demo's spike scenario: a base rate, a spike, back to base, as fractions of the run.

Arrivals come from the simulator's workload generator ahead of time and go to the fleet's router as
the clock reaches them, so a run's traffic depends on the seed only.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.engine import Request
from simulator.workload.scenarios import Scenario, generate

SPIKE_START = 0.15  # fractions of the scenario
SPIKE_END = 0.55


@dataclass(frozen=True)
class SpikeScenario:
    length: float
    base_rate: float
    spike_rate: float

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
    """The scenario's requests (the simulator's seeded Poisson generator, lengths from the shipped Azure
    conversation trace); ``due(now)`` hands over those that arrived by ``now``."""

    def __init__(self, scenario: SpikeScenario, seed: int) -> None:
        self.scenario = scenario
        shape = Scenario("spike", "kvscale-demo spike", scenario.length, scenario.rate,
                         max(scenario.base_rate, scenario.spike_rate))
        self._pending = generate(shape, seed).arrivals if shape.peak > 0 else ()
        self._next = 0
        self.count = 0

    def due(self, now: float) -> list[Request]:
        out = []
        while self._next < len(self._pending) and self._pending[self._next].at <= now:
            a = self._pending[self._next]
            out.append(Request(prompt_tokens=a.prompt_tokens, output_tokens=a.output_tokens, arrival=a.at))
            self._next += 1
        self.count += len(out)
        return out
