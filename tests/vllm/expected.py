"""What the exporter must report for a scenario, computed from the stats the test chose.

Independent of the exporter's code: the window's observations are the values recorded after
the first scrape (the first sample of a series is its baseline, PromQL's ``increase``), each
latency quantile is PromQL's ``histogram_quantile`` written out here again over bucket counts
made from the raw values, and the gauges follow DESIGN.md's formulas over the chosen stats.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

from exporter.contract.policy import Policy
from tests.vllm.scenarios import BLOCK_SIZE, STEP_SECONDS, Iteration, Scenario

# vLLM's default bounds (vllm/v1/metrics/buckets.py; the same lists in 0.12), from the reference notes.
TTFT = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
        80.0, 160.0, 640.0, 2560.0)
ITL = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
REQUEST_LATENCY = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
                   480.0, 960.0, 1920.0, 7680.0)
BUCKET_FAMILY = {"ttft": "time_to_first_token", "itl": "inter_token_latency", "e2e": "request_latency",
                 "queue": "request_latency"}
DEFAULTS = {"time_to_first_token": TTFT, "inter_token_latency": ITL, "request_latency": REQUEST_LATENCY}


def bounds(scenario: Scenario, short: str) -> tuple[float, ...]:
    family = BUCKET_FAMILY[short]
    custom = (scenario.custom_buckets or {}).get(family)
    return tuple(custom) if custom else DEFAULTS[family]


def cumulative(upper_bounds: Sequence[float], values: Sequence[float]) -> list[int]:
    """Classic cumulative bucket counts (le = each bound, then +Inf) of ``values``."""
    counts = [0] * (len(upper_bounds) + 1)
    for v in values:
        counts[bisect.bisect_left(upper_bounds, v)] += 1  # a value equal to a bound is in that bucket (le)
    return [sum(counts[: i + 1]) for i in range(len(counts))]


def promql_quantile(q: float, upper_bounds: Sequence[float], buckets: Sequence[float]) -> float | None:
    """histogram_quantile over cumulative ``buckets`` (le = upper_bounds, then +Inf)."""
    total = buckets[-1]
    if total == 0:
        return None
    rank = q * total
    i = next(i for i, c in enumerate(buckets) if c >= rank)
    if i == len(upper_bounds):
        return upper_bounds[-1]  # rank in +Inf: the highest finite bound
    lower = upper_bounds[i - 1] if i > 0 else 0.0
    below = buckets[i - 1] if i > 0 else 0
    return lower + (upper_bounds[i] - lower) * (rank - below) / (buckets[i] - below)


def _values(it: Iteration, short: str) -> list[float]:
    return {"ttft": it.ttft, "itl": it.itl, "e2e": [f.e2e for f in it.finished],
            "queue": [f.queue for f in it.finished]}[short]


def window_buckets(scenario: Scenario, short: str, upto: int) -> list[float]:
    """sum by (le) (increase(bucket[window])) over scrapes 0..upto: each engine's bucket a series whose
    drop is a restart (PromQL's rule, per bucket), its lifetime counts built from the raw values."""
    upper = bounds(scenario, short)
    total = [0.0] * (len(upper) + 1)
    for engine, _ in scenario.engines:
        lifetime: list[float] = []
        previous: list[int] | None = None
        for step in scenario.steps[: upto + 1]:
            if step.restart:
                lifetime = []
            lifetime += [v for r in step.records if r.engine == engine and r.iteration
                         for v in _values(r.iteration, short)]
            now = cumulative(upper, lifetime)
            if previous is not None:
                total = [t + (c - p if c >= p else c) for t, c, p in zip(total, now, previous, strict=True)]
            previous = now
    return total


def counted(scenario: Scenario, what: str, after: int, upto: int) -> float:
    total = 0.0
    for step in scenario.steps[after + 1: upto + 1]:
        total += sum(step.rejections.values()) if what == "rejections" else 0
        for r in step.records:
            it, s = r.iteration, r.scheduler
            if what == "prompt" and it:
                total += sum(it.prompt_tokens)
            elif what == "generation" and it:
                total += it.generation_tokens
            elif what == "preemptions" and it:
                total += it.preempted
            elif what == "hits" and s:
                total += s.prefix_hits
            elif what == "queries" and s:
                total += s.prefix_queries
    return total


def gauges(scenario: Scenario, step: int) -> dict[str, float]:
    """Instantaneous families after scrape ``step``: the last scheduler stats of each engine."""
    last = {r.engine: r.scheduler for s in scenario.steps[: step + 1] for r in s.records if r.scheduler}
    n = len(scenario.engines)
    per_engine_blocks = scenario.blocks / n  # vLLM exports only the sum: each engine gets the mean
    running = sum(s.running for s in last.values())
    waiting = sum(s.waiting for s in last.values())
    usage = sum(s.kv_usage for s in last.values()) / n
    waste = sum(s.running * (BLOCK_SIZE - 1) / 2 for s in last.values())
    used = sum(s.kv_usage * (per_engine_blocks - 1) * BLOCK_SIZE for s in last.values())
    return {"kvscale_vllm_requests_running": running, "kvscale_vllm_requests_waiting": waiting,
            "kvscale_vllm_kv_cache_usage_ratio": usage,
            "kvscale_vllm_kv_cache_capacity_tokens": scenario.blocks * BLOCK_SIZE,
            "kvscale_vllm_kv_cache_fragmentation_ratio": min(1.0, waste / used)}


def windowed(scenario: Scenario, step: int, quantiles: Sequence[float], price: float, *,
             admission: bool) -> dict[tuple[str, str], float]:
    """(family, quantile or "") -> value over the window ending at scrape ``step`` (all scrapes in it)."""
    out: dict[tuple[str, str], float] = {}
    names = {"ttft": "kvscale_vllm_ttft_seconds", "itl": "kvscale_vllm_inter_token_latency_seconds",
             "e2e": "kvscale_vllm_e2e_latency_seconds", "queue": "kvscale_vllm_queue_time_seconds"}
    for short, family in names.items():
        buckets = window_buckets(scenario, short, step)
        for q in quantiles:
            value = promql_quantile(q, bounds(scenario, short), buckets)
            if value is not None:
                out[(family, repr(q))] = value
    elapsed = step * STEP_SECONDS
    rates = {what: counted(scenario, what, 0, step) / elapsed
             for what in ("prompt", "generation", "preemptions", "rejections")}
    out[("kvscale_vllm_prompt_tokens_per_second", "")] = rates["prompt"]
    out[("kvscale_vllm_generation_tokens_per_second", "")] = rates["generation"]
    out[("kvscale_vllm_preemptions_per_second", "")] = rates["preemptions"]
    if admission:  # vLLM 0.32+ exports the counter (zero without rejections)
        out[("kvscale_vllm_admission_rejections_per_second", "")] = rates["rejections"]
    out[("kvscale_vllm_prefix_cache_hit_ratio", "")] = counted(scenario, "hits", 0, step) / counted(
        scenario, "queries", 0, step)
    tokens = rates["prompt"] + rates["generation"]
    out[("kvscale_vllm_cost_per_million_tokens_dollars", "")] = price / (tokens * 3600) * 1e6
    assert all(math.isfinite(v) for v in out.values())
    return out


LATENCY_FAMILIES = {"ttft": "kvscale_vllm_ttft_seconds", "itl": "kvscale_vllm_inter_token_latency_seconds",
                    "e2e": "kvscale_vllm_e2e_latency_seconds", "queue": "kvscale_vllm_queue_time_seconds"}


def raw(scenario: Scenario, short: str, upto: int) -> list[float]:
    """Every value of one latency recorded in steps 0..upto, all engines."""
    return [v for s in scenario.steps[: upto + 1] for r in s.records if r.iteration
            for v in _values(r.iteration, short)]


def linear_quantile(values: Sequence[float], q: float) -> float:
    """numpy's default quantile (method "linear"), written out."""
    ordered = sorted(values)
    h = (len(ordered) - 1) * q
    low = math.floor(h)
    return ordered[low] + (h - low) * (ordered[min(low + 1, len(ordered) - 1)] - ordered[low])


def exact(scenario: Scenario, step: int, quantiles: Sequence[float]) -> dict[tuple[str, str], float]:
    """The plugin's quantiles after scrape ``step``: all values so far (the renderer runs within its window)."""
    return {(family, repr(q)): linear_quantile(raw(scenario, short, step), q)
            for short, family in LATENCY_FAMILIES.items() for q in quantiles}


def saturation(scenario: Scenario, step: int, policy: Policy) -> float:
    """max(kv/kv_target, waiting/queue_target, ttft_p95/slo) over the terms known at scrape ``step``."""
    g = gauges(scenario, step)
    terms = [g["kvscale_vllm_kv_cache_usage_ratio"] / policy.kv_target,
             g["kvscale_vllm_requests_waiting"] / policy.queue_target]
    if scenario.plugins:
        terms.append(linear_quantile(raw(scenario, "ttft", step), 0.95) / policy.ttft_p95_slo_seconds)
        return max(terms)
    ttft_p95 = promql_quantile(0.95, bounds(scenario, "ttft"), window_buckets(scenario, "ttft", step))
    if step > 0 and ttft_p95 is not None:
        terms.append(ttft_p95 / policy.ttft_p95_slo_seconds)
    return max(terms)
