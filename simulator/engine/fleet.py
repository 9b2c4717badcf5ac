"""A fleet of vLLM replicas behind a least-outstanding-requests router, scaled up and down.

A new replica pays the profile's cold start (image pull, weight load, warm-up) before it
is ready and the router sends it anything. A replica scaled down stops taking requests,
finishes the ones it holds (a preStop hook that drains), then goes; its GPU is paid until
then. Requests that arrive while no replica is ready wait at the router, as an inference
gateway's queue holds them.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from simulator.engine.clock import Clock, VirtualClock
from simulator.engine.exposition import render
from simulator.engine.profile import Profile, load
from simulator.engine.request import Request
from simulator.engine.scheduler import Engine


@dataclass(eq=False)
class Replica:
    """One vLLM server (a pod): ``dp`` engine cores behind one frontend."""

    name: str
    engines: list[Engine]
    created_at: float
    ready_at: float
    clock: Clock
    prefix_caching: bool = False
    terminating: bool = False
    gone_at: float | None = None
    assigned: int = 0
    next_change: float = math.inf

    @property
    def engine(self) -> Engine:
        return self.engines[0]

    @property
    def ready(self) -> bool:
        return not self.terminating and self.clock.now() >= self.ready_at

    @property
    def outstanding(self) -> int:
        return sum(e.outstanding for e in self.engines)

    def submit(self, req: Request) -> None:
        """Hand a request to the engine vLLM's DP balancer would pick (fewest waiting, then running)."""
        engine = min(self.engines, key=lambda e: (len(e.waiting) * 4 + len(e.running), e.index))
        engine.advance(req.arrival)
        engine.add(req)
        self.assigned += 1
        self.next_change = min(self.next_change, engine.next_change())

    def advance(self, t: float) -> None:
        for e in self.engines:
            e.advance(t)
        self.next_change = min(e.next_change() for e in self.engines)

    def gpu_busy_seconds(self) -> float:
        return sum(e.stats.busy_seconds for e in self.engines)

    def metrics_text(self) -> str:
        """This replica's /metrics body, vLLM 0.33.0 format."""
        profile = self.engine.profile
        return render(self.engines, model_name=profile.served_model_name, created=self.clock.unix(self.created_at),
                      gpu_memory_utilization=profile.gpu_memory_utilization, prefix_caching=self.prefix_caching)


class Fleet:
    """Replicas of one model on one GPU type; the router and the scaling actions on them.

    The first ``replicas`` are already warm (the Deployment existed before the run);
    ``cold_start_s`` defaults to the profile's image pull + weight load + warm-up.
    """

    def __init__(self, profile: Profile | str, replicas: int = 1, clock: Clock | None = None,
                 cold_start_s: float | None = None, dp: int = 1, *, prefix_caching: bool = False,
                 name_prefix: str = "vllm") -> None:
        if dp < 1 or replicas < 0:
            raise ValueError(f"need dp >= 1 and replicas >= 0, got dp={dp} replicas={replicas}")
        self.profile = load(profile) if isinstance(profile, str) else profile
        self.clock: Clock = clock or VirtualClock()
        self.cold_start_s = self.profile.cold_start.total_s if cold_start_s is None else cold_start_s
        self.dp = dp
        self.prefix_caching = prefix_caching
        self.name_prefix = name_prefix
        self.replicas: list[Replica] = []
        self.retired: list[Replica] = []
        self.pending: deque[Request] = deque()
        self.finish_hooks: list[Callable[[Request], None]] = []
        self._names = itertools.count()
        for _ in range(replicas):
            self._new_replica(self.clock.now())

    def _new_replica(self, ready_at: float) -> Replica:
        now = self.clock.now()
        engines = [Engine(self.profile, index=i, start=ready_at, prefix_caching=self.prefix_caching)
                   for i in range(self.dp)]
        for e in engines:
            e.on_finish = self._finished
        replica = Replica(f"{self.name_prefix}-{next(self._names)}", engines, now, ready_at, self.clock,
                          prefix_caching=self.prefix_caching)
        self.replicas.append(replica)
        return replica

    def _finished(self, req: Request) -> None:
        for hook in self.finish_hooks:
            hook(req)

    @property
    def active(self) -> list[Replica]:
        """Replicas that count toward the Deployment's replicas (not terminating)."""
        return [r for r in self.replicas if not r.terminating]

    def scale_to(self, n: int) -> None:
        """Set the Deployment's replica count: new pods cold-start, removed pods drain then go."""
        if n < 0:
            raise ValueError(f"replicas must be >= 0, got {n}")
        active = self.active
        now = self.clock.now()
        for _ in range(n - len(active)):
            self._new_replica(now + self.cold_start_s)
        if n < len(active):
            # The ReplicaSet removes unready pods first, then the newest.
            victims = sorted(active, key=lambda r: (r.ready, -r.created_at))[: len(active) - n]
            for r in victims:
                r.terminating = True
            self._retire_drained(now)

    def _retire_drained(self, now: float) -> None:
        for r in [r for r in self.replicas if r.terminating and r.outstanding == 0]:
            r.gone_at = now
            self.replicas.remove(r)
            self.retired.append(r)

    def submit(self, req: Request) -> Replica | None:
        """Route a request arriving now to the ready replica with the fewest outstanding requests."""
        now = self.clock.now()
        req.arrival = now
        ready = self._ready_now(now)
        if not ready:
            self.pending.append(req)
            return None
        target = min(ready, key=lambda r: (r.outstanding, r.assigned))
        target.submit(req)
        return target

    def _ready_now(self, now: float) -> list[Replica]:
        ready = []
        for r in self.replicas:
            if r.ready:
                if r.next_change <= now:
                    r.advance(now)  # finishes due by now change its outstanding count
                ready.append(r)
        return ready

    def advance(self, t: float) -> None:
        """Bring every replica to simulated time ``t``; flush the router's queue; drop drained pods."""
        for r in self.replicas:
            if r.clock.now() >= r.ready_at or r.outstanding:
                r.advance(t)
        if self.pending:
            ready = self._ready_now(t)
            while self.pending and ready:
                target = min(ready, key=lambda r: (r.outstanding, r.assigned))
                target.submit(self.pending.popleft())
        self._retire_drained(t)

    def gpu_seconds(self, now: float | None = None) -> float:
        """GPU time paid so far: every pod from creation (cold start included) until it is gone."""
        now = self.clock.now() if now is None else now
        gpus = self.profile.gpus * self.dp
        return sum(((r.gone_at if r.gone_at is not None else now) - r.created_at) * gpus
                   for r in (*self.replicas, *self.retired))

