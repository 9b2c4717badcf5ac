"""Built-in scenarios: steady, spike, ramp and diurnal load, seeded.

Rates are sized for Llama-3.1-8B on H100 (one replica serves about 9 req/s of the Azure mix
before its KV cache fills), so each scenario needs several replicas at its peak.

Arrivals are a Poisson process whose rate follows the scenario's shape (thinning of a
homogeneous process at the peak rate); prompt and output lengths are drawn from the
shipped Azure conversation trace, so the mix is a real service's. The same seed gives
the same requests.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from simulator.workload.trace import Arrival, Workload, azure_conversation, lengths

RateShape = Callable[[float], float]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    duration: float
    shape: RateShape
    peak: float


def _steady(rate: float) -> RateShape:
    return lambda t: rate


def _spike(base: float, peak: float, start: float, length: float) -> RateShape:
    return lambda t: peak if start <= t < start + length else base


def _ramp(low: float, high: float, duration: float) -> RateShape:
    # Up over the first half, hold, then back down over the last quarter.
    def shape(t: float) -> float:
        if t < duration / 2:
            return low + (high - low) * t / (duration / 2)
        if t < 0.75 * duration:
            return high
        return high - (high - low) * (t - 0.75 * duration) / (0.25 * duration)
    return shape


def _diurnal(mean: float, amplitude: float, period: float) -> RateShape:
    # Trough at t=0 (night), peak at half the period (afternoon).
    return lambda t: mean * (1 - amplitude * math.cos(2 * math.pi * t / period))


def scenarios(scale: float = 1.0) -> dict[str, Scenario]:
    """The built-in scenarios; ``scale`` multiplies every rate (requests per second)."""
    s = scale
    return {
        "steady": Scenario("steady", "20 req/s for 30 min", 1800.0, _steady(20 * s), 20 * s),
        "spike": Scenario("spike", "10 req/s, a 10-minute spike to 50 req/s at minute 10, 40 min", 2400.0,
                          _spike(10 * s, 50 * s, 600.0, 600.0), 50 * s),
        "ramp": Scenario("ramp", "5 -> 50 req/s over 30 min, hold 15, down over 15", 3600.0,
                         _ramp(5 * s, 50 * s, 3600.0), 50 * s),
        "diurnal": Scenario("diurnal", "a day compressed into an hour: 5 -> 45 req/s and back", 3600.0,
                            _diurnal(25 * s, 0.8, 3600.0), 45 * s),
    }


def generate(scenario: Scenario, seed: int = 0, duration: float | None = None) -> Workload:
    """Seeded arrivals for a scenario, lengths from the Azure trace."""
    rng = random.Random(seed)
    pairs = lengths(azure_conversation())
    end = scenario.duration if duration is None else duration
    arrivals: list[Arrival] = []
    t = 0.0
    while True:
        t += rng.expovariate(scenario.peak)
        if t >= end:
            break
        if rng.random() * scenario.peak <= scenario.shape(t):
            prompt, output = pairs[rng.randrange(len(pairs))]
            arrivals.append(Arrival(t, prompt, output))
    return Workload(scenario.name, tuple(arrivals), end)


def by_name(name: str, *, seed: int = 0, scale: float = 1.0) -> Workload:
    """A built-in scenario by name, or ``azure`` for the shipped trace as recorded."""
    if name == "azure":
        return azure_conversation()
    known = scenarios(scale)
    if name not in known:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join([*known, 'azure'])}")
    return generate(known[name], seed)
