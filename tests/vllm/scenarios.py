"""The conformance scenarios: the stats each step records, chosen here, and written as the renderer's JSON.

Latencies come from a seeded generator, so each scenario's raw values are known to the test
(``Scenario.values``) and its expectations are computed from them, never read back from vLLM.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from tests.vllm.renderer import version_tuple

STEP_SECONDS = 10.0
"""Scrapes are this far apart on the exporter's clock."""
BLOCK_SIZE = 16
"""render.py's block size."""


@dataclass(frozen=True)
class Finished:
    reason: str
    e2e: float
    queue: float
    prefill: float
    decode: float
    prompt_tokens: int
    generation_tokens: int
    preemptions: int = 0


@dataclass(frozen=True)
class Sched:
    running: int
    waiting: int
    kv_usage: float
    prefix_queries: int = 0
    prefix_hits: int = 0
    hits_by_source: dict[str, int] = field(default_factory=dict)
    """Connector cache tiers (host, disk, p2p): 0.32+."""


@dataclass(frozen=True)
class Iteration:
    ttft: list[float]
    itl: list[float]
    finished: list[Finished]
    prompt_tokens: tuple[int, int]
    """(computed, local cache hit)."""
    generation_tokens: int
    preempted: int


@dataclass(frozen=True)
class Record:
    engine: int
    scheduler: Sched | None
    iteration: Iteration | None


@dataclass(frozen=True)
class Step:
    records: list[Record]
    rejections: dict[str, int] = field(default_factory=dict)
    restart: bool = False
    garbage: int = 0
    """Calls of kvscale's plugin with objects that are no vLLM stats (it must count them, not raise)."""


@dataclass(frozen=True)
class Scenario:
    name: str
    engines: list[tuple[int, int]]
    """(engine index, GPU blocks) in the order the engines report ready."""
    steps: list[Step]
    max_model_len: int = 4096
    custom_buckets: dict[str, list[float]] | None = None
    plugins: bool = False

    def spec(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def blocks(self) -> int:
        return sum(b for _, b in self.engines)


def iteration(rng: random.Random, *, requests: int, ttft_scale: float, itl_per_request: int = 3,
              preempted: int = 0, preemptions: tuple[int, ...] = ()) -> Iteration:
    """``requests`` requests that got their first token and finished in this step."""
    ttft = [round(rng.uniform(0.05, 1.6) * ttft_scale, 4) for _ in range(requests)]
    itl = [round(rng.uniform(0.008, 0.3), 4) for _ in range(requests * itl_per_request)]
    finished = [Finished("stop" if i % 3 else "length", e2e=round(t + rng.uniform(0.2, 9.0), 4),
                         queue=round(rng.uniform(0.0, 2.5), 4), prefill=round(t / 2, 4), decode=round(t, 4),
                         prompt_tokens=100 + i, generation_tokens=20 + i,
                         preemptions=preemptions[i] if i < len(preemptions) else 0)
                for i, t in enumerate(ttft)]
    return Iteration(ttft, itl, finished, prompt_tokens=(70 * requests, 30 * requests),
                     generation_tokens=25 * requests, preempted=preempted)


def scenarios(release: str) -> list[Scenario]:
    """Every scenario the tier renders for vLLM ``release`` (later families only where it has them)."""
    rng = random.Random(15)
    new = version_tuple(release) >= (0, 32)
    tiers = {"host": 7, "disk": 3} if new else {}
    rejections = {"max_num_queued_reqs": 2, "max_num_queued_tokens": 1} if new else {}

    def busy(engine: int, load: float, usage: float, requests: int, **more: Any) -> Record:
        return Record(engine, Sched(running=int(10 * load), waiting=int(4 * load), kv_usage=usage,
                                    prefix_queries=400 * requests, prefix_hits=150 * requests,
                                    hits_by_source=tiers),
                      iteration(rng, requests=requests, ttft_scale=load, **more))

    single = Scenario("single-engine", [(0, 12345)], [
        Step([busy(0, 1.0, 0.30, 4)]),
        Step([busy(0, 1.0, 0.40, 6, preempted=2)], rejections),
        Step([busy(0, 1.2, 0.55, 9, preempted=1)]),
    ])
    # Engine 1 reports ready first; the engines differ in blocks and load.
    dp = Scenario("dp2-unequal", [(1, 11800), (0, 12345)], [
        Step([busy(0, 0.5, 0.20, 3), busy(1, 1.5, 0.70, 5)]),
        Step([busy(0, 0.5, 0.25, 4), busy(1, 1.5, 0.80, 8, preempted=3)], rejections),
        Step([busy(0, 0.6, 0.30, 2), busy(1, 1.6, 0.85, 7)], garbage=3),
    ], plugins=True)
    # A frontend restart between the second and third scrape: every counter and bucket starts again.
    restart = Scenario("restart", [(0, 12345)], [
        Step([busy(0, 1.0, 0.3, 6, preempted=4)], rejections),
        Step([busy(0, 1.0, 0.4, 8, preempted=2)], rejections),
        Step([busy(0, 1.0, 0.2, 3, preempted=1)], {"max_num_queued_tokens": 1} if new else {}, restart=True),
    ])
    out = [single, dp, restart]
    if new:
        buckets: dict[str, list[float]] = {
            "time_to_first_token": [0.1, 0.2, 0.4, 0.8, 1.6], "inter_token_latency": [0.05, 0.1, 0.2],
            "request_latency": [1.0, 4.0, 16.0], "request_num_preemptions": [1, 3]}
        out.append(Scenario("custom-buckets", [(0, 12345)], [
            Step([busy(0, 1.0, 0.3, 5)]),
            Step([busy(0, 1.0, 0.3, 12, preemptions=(0, 1, 2, 3, 4))]),
        ], custom_buckets=buckets))
    return out


def simulator_shaped() -> Scenario:
    """One engine, max_model_len 2048 (the simulator test's profile), nothing optional: for the shape check."""
    rng = random.Random(3)
    return Scenario("plain-2048", [(0, 12345)], [Step([Record(0, Sched(3, 1, 0.2), iteration(rng, requests=2,
                                                                                              ttft_scale=1.0))])],
                    max_model_len=2048)
