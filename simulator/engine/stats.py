"""One engine's vLLM statistics: counters and histograms with vLLM 0.33.0's bucket families.

Histograms take bulk observations: a decode jump of k steps adds k inter-token gaps
per running request, growing linearly, in O(buckets) instead of O(k x requests).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field

from simulator.engine.request import Request

# vllm/v1/metrics/buckets.py (0.33.0)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
               40.0, 80.0)
REQUEST_LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
                           120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
ITERATION_TOKENS_BUCKETS = tuple(float(2**i) for i in (0, *range(3, 15)))
PARAMS_N_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0)
NUM_PREEMPTIONS_BUCKETS = (1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0)
FINISH_REASONS = ("stop", "length", "abort", "error", "repetition")


def request_tokens_buckets(max_model_len: int) -> tuple[float, ...]:
    """vLLM's 1-2-5 series up to max_model_len."""
    out: list[float] = []
    exponent = 0
    while True:
        for m in (1, 2, 5):
            value = m * 10**exponent
            if value > max_model_len:
                return tuple(out)
            out.append(float(value))
        exponent += 1


@dataclass
class Histogram:
    """Per-bucket (not cumulative) counts; the last slot is +Inf."""

    bounds: tuple[float, ...]
    counts: list[float] = field(default_factory=list)
    total: float = 0.0
    n: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0.0] * (len(self.bounds) + 1)

    def observe(self, value: float, weight: float = 1.0) -> None:
        self.counts[bisect_left(self.bounds, value)] += weight
        self.total += value * weight
        self.n += weight

    def observe_linear(self, first: float, step: float, k: int, weight: float = 1.0) -> None:
        """Observe first, first+step, ..., first+(k-1)*step, each ``weight`` times."""
        if k <= 0:
            return
        if step <= 0 or k == 1:
            self.observe(first, weight * k)
            return
        below = 0  # values <= the previous bound
        for i, bound in enumerate(self.bounds):
            upto = 0 if bound < first else min(k, math.floor((bound - first) / step) + 1)
            self.counts[i] += (upto - below) * weight
            below = upto
            if below == k:
                break
        self.counts[-1] += (k - below) * weight
        self.total += (k * first + step * k * (k - 1) / 2) * weight
        self.n += k * weight

    def cumulative(self) -> list[float]:
        out, running = [], 0.0
        for c in self.counts:
            running += c
            out.append(running)
        return out


@dataclass
class EngineStats:
    """Counters and histograms of one engine, named by their vLLM family."""

    max_model_len: int
    counters: dict[str, float] = field(default_factory=dict)
    finished: dict[str, float] = field(default_factory=lambda: dict.fromkeys(FINISH_REASONS, 0.0))
    histograms: dict[str, Histogram] = field(default_factory=dict)
    busy_seconds: float = 0.0
    """Time with a step running: what NVML reports as GPU utilization."""

    def __post_init__(self) -> None:
        for name in ("prompt_tokens", "generation_tokens", "num_preemptions", "prefix_cache_queries",
                     "prefix_cache_hits", "steps"):
            self.counters.setdefault(name, 0.0)
        tokens = request_tokens_buckets(self.max_model_len)
        families = {
            "request_prompt_tokens": tokens, "request_generation_tokens": tokens,
            "iteration_tokens_total": ITERATION_TOKENS_BUCKETS, "request_max_num_generation_tokens": tokens,
            "request_params_n": PARAMS_N_BUCKETS, "request_params_max_tokens": tokens,
            "time_to_first_token_seconds": TTFT_BUCKETS, "inter_token_latency_seconds": ITL_BUCKETS,
            "request_time_per_output_token_seconds": ITL_BUCKETS,
            "e2e_request_latency_seconds": REQUEST_LATENCY_BUCKETS,
            "request_queue_time_seconds": REQUEST_LATENCY_BUCKETS,
            "request_inference_time_seconds": REQUEST_LATENCY_BUCKETS,
            "request_prefill_time_seconds": REQUEST_LATENCY_BUCKETS,
            "request_decode_time_seconds": REQUEST_LATENCY_BUCKETS,
            "request_num_preemptions": NUM_PREEMPTIONS_BUCKETS,
            "request_prefill_kv_computed_tokens": tokens,
        }
        for name, bounds in families.items():
            self.histograms.setdefault(name, Histogram(bounds))

    def count(self, name: str, amount: float = 1.0) -> None:
        self.counters[name] += amount

    def first_token(self, prompt_tokens: int, cached_tokens: int, ttft: float) -> None:
        """A request's prefill completed: vLLM counts its prompt tokens once, at the first token."""
        self.counters["prompt_tokens"] += prompt_tokens
        self.counters["prompt_cached"] = self.counters.get("prompt_cached", 0.0) + cached_tokens
        self.histograms["time_to_first_token_seconds"].observe(ttft)

    def finished_request(self, req: Request, reason: str) -> None:
        """FinishedRequestStats of vLLM: per-request histograms at the end of a request."""
        self.finished[reason] += 1
        h = self.histograms
        end = req.finished_at if req.finished_at is not None else req.arrival
        h["e2e_request_latency_seconds"].observe(end - req.arrival)
        h["request_prompt_tokens"].observe(req.prompt_tokens)
        h["request_generation_tokens"].observe(req.generated)
        h["request_max_num_generation_tokens"].observe(req.generated)
        h["request_params_n"].observe(1)
        h["request_params_max_tokens"].observe(req.max_tokens or req.output_tokens)
        h["request_num_preemptions"].observe(req.preemptions)
        if req.first_scheduled is None:
            return  # aborted while queued: vLLM has no engine-side times for it
        h["request_queue_time_seconds"].observe(req.first_scheduled - req.arrival)
        h["request_prefill_kv_computed_tokens"].observe(req.prompt_tokens - req.cached_tokens)
        if req.first_token is not None and req.last_token is not None:
            decode = req.last_token - req.first_token
            h["request_prefill_time_seconds"].observe(req.first_token - req.first_scheduled)
            h["request_decode_time_seconds"].observe(decode)
            h["request_inference_time_seconds"].observe(req.last_token - req.first_scheduled)
            if req.generated > 1:
                h["request_time_per_output_token_seconds"].observe(decode / (req.generated - 1))
