"""One what-if run: a workload through a simulated fleet scaled by one policy, on a virtual clock.

Arrivals and autoscaler syncs are interleaved in time order; between them the engines
jump from event to event. The run continues past the last arrival until every request
is done (or a drain limit), and reports what an operator pays and feels: minutes with
TTFT p95 above the SLO, p95 TTFT, GPU-hours (cold starts and draining pods included),
cost per 1M tokens and scaling events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from exporter.contract.policy import Policy
from simulator.engine.clock import VirtualClock
from simulator.engine.fleet import Fleet
from simulator.engine.profile import Profile
from simulator.engine.request import Request
from simulator.whatif.policies import Autoscaler, Candidate
from simulator.whatif.signals import GPU_UTIL, KV_USAGE, SATURATION, TTFT, WAITING, FleetSignals
from simulator.workload.trace import Workload

DRAIN_LIMIT_SECONDS = 1800.0


@dataclass(frozen=True)
class Settings:
    profile: Profile
    policy: Policy
    min_replicas: int = 1
    max_replicas: int = 16
    initial_replicas: int = 2
    sync_seconds: float = 15.0
    gpu_price_per_hour: float = 2.5


@dataclass
class Sample:
    at: float
    replicas: int
    ready: int
    waiting: float
    kv_usage: float | None
    ttft_p95: float | None
    saturation: float | None
    gpu_util: float | None


@dataclass
class Result:
    policy: str
    workload: str
    samples: list[Sample] = field(default_factory=list)
    events: list[tuple[float, int, int]] = field(default_factory=list)
    ttfts: list[tuple[float, float]] = field(default_factory=list)
    """(time of first token, TTFT) per request."""
    tokens: float = 0.0
    gpu_hours: float = 0.0
    price: float = 0.0
    slo: float = 0.8
    unfinished: int = 0

    def p95_ttft(self) -> float:
        values = sorted(t for _, t in self.ttfts)
        return values[min(len(values) - 1, math.ceil(0.95 * len(values)) - 1)] if values else math.nan

    def slo_violation_minutes(self) -> int:
        """Minutes whose TTFT p95 (over first tokens in that minute) exceeded the SLO."""
        minutes: dict[int, list[float]] = {}
        for at, ttft in self.ttfts:
            minutes.setdefault(int(at // 60), []).append(ttft)
        bad = 0
        for values in minutes.values():
            values.sort()
            if values[math.ceil(0.95 * len(values)) - 1] > self.slo:
                bad += 1
        return bad

    def cost_per_million(self) -> float:
        return self.gpu_hours * self.price / self.tokens * 1e6 if self.tokens else math.nan


def simulate(workload: Workload, candidate: Candidate, settings: Settings) -> Result:
    clock = VirtualClock()
    fleet = Fleet(settings.profile, replicas=settings.initial_replicas, clock=clock)
    result = Result(candidate.name, workload.name, price=settings.gpu_price_per_hour,
                    slo=settings.policy.ttft_p95_slo_seconds)

    def finished(req: Request) -> None:
        if req.first_token is not None:
            result.ttfts.append((req.first_token, req.first_token - req.arrival))
        result.tokens += req.prompt_tokens + req.generated

    fleet.finish_hooks.append(finished)
    signals = FleetSignals(fleet, settings.policy)
    scaler = candidate.build(settings.policy, settings.min_replicas, settings.max_replicas)
    arrivals = workload.arrivals
    i, tick = 0, 0.0
    while True:
        if i < len(arrivals) and arrivals[i].at < tick:
            a = arrivals[i]
            clock.advance_to(a.at)
            fleet.submit(Request(a.prompt_tokens, a.output_tokens))
            i += 1
            continue
        busy = any(r.outstanding for r in fleet.replicas) or fleet.pending
        if i >= len(arrivals) and (not busy or tick > workload.duration + DRAIN_LIMIT_SECONDS):
            break
        clock.advance_to(tick)
        fleet.advance(tick)
        _sync(fleet, signals, scaler, result, tick)
        tick += settings.sync_seconds
    result.unfinished = sum(r.outstanding for r in fleet.replicas) + len(fleet.pending)
    result.gpu_hours = fleet.gpu_seconds(clock.now()) / 3600.0
    return result


def _sync(fleet: Fleet, signals: FleetSignals, scaler: Autoscaler, result: Result, now: float) -> None:
    signals.sample(now)
    current = len(fleet.active)
    desired = scaler.decide(now, current, signals.pod_states(now), signals)
    if desired is not None and desired != current:
        fleet.scale_to(desired)
        result.events.append((now, current, desired))
    values = signals.values.values()

    def agg(name: str, how: str) -> float | None:
        got = [v[name] for v in values if name in v]
        if not got:
            return None
        return max(got) if how == "max" else sum(got) / len(got)

    result.samples.append(Sample(
        now, len(fleet.active), sum(1 for r in fleet.replicas if r.ready),
        sum(v.get(WAITING, 0.0) for v in values) + len(fleet.pending), agg(KV_USAGE, "mean"), agg(TTFT, "max"),
        agg(SATURATION, "max"), agg(GPU_UTIL, "mean")))
