"""Pure derivations: fold data-parallel engines per pod, fragmentation, saturation, cost.

Formulas are DESIGN.md's. Each function returns None where the value is unknowable
from what vLLM exported; the caller then omits the series rather than invent one.
Whether a model's KV blocks track its tokens (so that fragmentation can be estimated) is
decided from ``cache_config_info`` by the rule in :mod:`exporter.vllm.kv_geometry`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from exporter.vllm.kv_geometry import geometry
from exporter.vllm.reading import PodReading


@dataclass(frozen=True)
class EngineState:
    """One engine's gauges and KV geometry (N = its GPU blocks, B = block size)."""

    running: float | None
    waiting: float | None
    kv_usage: float | None
    gpu_blocks: float | None
    block_size: int | None
    capacity_tokens: float | None
    """This engine's share of the pod's KV capacity."""
    tracks_tokens: bool | None
    """One full-attention KV cache group (blocks proportional to tokens); None: cannot tell."""


@dataclass(frozen=True)
class PodGauges:
    running: float | None
    waiting: float | None
    kv_usage: float | None
    capacity_tokens: float | None
    fragmentation: float | None


def engine_states(reading: PodReading, model: str) -> list[EngineState]:
    """Per-engine gauges joined with the cache config of the same engine label."""
    # Every engine's row carries the frontend's values (blocks summed over the DP engines),
    # so the number of rows is the DP size.
    n_configs = max(1, len(reading.cache))
    states = []
    for (m, engine), e in sorted(reading.engines.items()):
        if m != model or not e.gauges:
            continue  # frontend-only series (no engine label, counters only) are not an engine
        cache = reading.cache.get(engine) or (next(iter(reading.cache.values())) if len(reading.cache) == 1 else None)
        geo = geometry(cache, n_configs) if cache else None
        states.append(EngineState(
            running=e.gauges.get("running"), waiting=e.gauges.get("waiting"), kv_usage=e.gauges.get("kv_usage"),
            gpu_blocks=geo.engine_blocks if geo else None, block_size=geo.block_size if geo else None,
            capacity_tokens=geo.capacity_tokens / n_configs if geo and geo.capacity_tokens else None,
            tracks_tokens=geo.tracks_tokens if geo else None))
    return states


def fold(states: list[EngineState]) -> PodGauges:
    """One pod from its engines: counts summed, KV usage weighted by each engine's blocks."""
    return PodGauges(
        running=_sum(s.running for s in states),
        waiting=_sum(s.waiting for s in states),
        kv_usage=_block_weighted_usage(states),
        capacity_tokens=_capacity(states),
        fragmentation=fragmentation(states),
    )


def _sum(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(sum(present)) if present else None


def _block_weighted_usage(states: list[EngineState]) -> float | None:
    usable = [s for s in states if s.kv_usage is not None]
    if not usable:
        return None
    if all(s.gpu_blocks for s in usable):
        weight = sum(s.gpu_blocks or 0.0 for s in usable)
        return sum((s.kv_usage or 0.0) * (s.gpu_blocks or 0.0) for s in usable) / weight
    return sum(s.kv_usage or 0.0 for s in usable) / len(usable)


def _capacity(states: list[EngineState]) -> float | None:
    if states and all(s.capacity_tokens for s in states):
        return float(sum(s.capacity_tokens or 0.0 for s in states))
    return None


def fragmentation(states: list[EngineState]) -> float | None:
    """ESTIMATE of allocated-but-unfilled KV slots over used slots, per DESIGN.md.

    Per engine the expected tail waste is R*(B-1)/2 tokens (each running request's last
    block half full on average) against u*(N-1)*B used slots. None unless the KV cache is
    one full-attention group (a hybrid model's blocks are not proportional to its tokens;
    see kv_geometry), and when nothing is used.
    """
    waste = used = 0.0
    for s in states:
        if s.running is None or s.kv_usage is None or not s.gpu_blocks or not s.block_size:
            return None
        if s.tracks_tokens is not True:
            return None
        waste += s.running * (s.block_size - 1) / 2
        used += s.kv_usage * (s.gpu_blocks - 1) * s.block_size
    if not states or used <= 0:
        return None
    return min(1.0, waste / used)


def saturation(*, kv_usage: float | None, waiting: float | None, ttft_p95: float | None,
               kv_target: float, queue_target: float, ttft_slo: float) -> float | None:
    """How full a pod is against policy, 1.0 = at target, over the terms available."""
    terms = []
    if kv_usage is not None:
        terms.append(kv_usage / kv_target)
    if waiting is not None:
        terms.append(waiting / queue_target)
    if ttft_p95 is not None:
        terms.append(ttft_p95 / ttft_slo)
    return max(terms) if terms else None


def cost_per_million_tokens(*, price_per_gpu_hour: float | None, gpus: float,
                            tokens_per_second: float | None) -> float | None:
    """Dollars per 1M tokens: GPU price x GPUs / tokens per hour x 1e6; None without price or tokens."""
    if price_per_gpu_hour is None or tokens_per_second is None or tokens_per_second <= 0 or gpus <= 0:
        return None
    return price_per_gpu_hour * gpus / (tokens_per_second * 3600.0) * 1e6


def hit_ratio(hits: float | None, queries: float | None) -> float | None:
    """Prefix-cache hits over queries in the window; None with no queries."""
    if hits is None or queries is None or queries <= 0:
        return None
    return min(1.0, hits / queries)
