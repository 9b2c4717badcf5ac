"""The signals an autoscaler reads, computed from the simulated engines exactly as the exporter does.

Each sample turns a replica's engine stats into the exporter's ``PodReading`` (the
same shape the exporter reads from vLLM's /metrics) and feeds the exporter's own
sliding-window ``History``; gauges are folded over DP engines, TTFT p95 is the
exporter's windowed ``histogram_quantile``, and saturation is ``derive.saturation``
with the policy's targets. GPU utilization is the fraction of the sample period with a
step running, as NVML's duty cycle. Pods without data are left out, never 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from exporter.contract.catalog import family
from exporter.contract.policy import Policy
from exporter.vllm import derive
from exporter.vllm.reading import CacheConfig, EngineReading, Histogram, PodReading
from exporter.vllm.window import History, window_quantiles
from simulator.autoscaling.keda import Trigger
from simulator.autoscaling.spec import MetricTarget, PodState
from simulator.engine.fleet import Fleet, Replica
from simulator.engine.stats import Histogram as EngineHistogram

WAITING = "kvscale_vllm_requests_waiting"
RUNNING = "kvscale_vllm_requests_running"
KV_USAGE = "kvscale_vllm_kv_cache_usage_ratio"
TTFT = "kvscale_vllm_ttft_seconds"
SATURATION = "kvscale_vllm_saturation_ratio"
GPU_UTIL = "kvscale_gpu_utilization_ratio"
_COUNTERS = {"prompt_tokens": "prompt_tokens", "generation_tokens": "generation_tokens",
             "preemptions": "num_preemptions", "prefix_queries": "prefix_cache_queries",
             "prefix_hits": "prefix_cache_hits"}
_HISTOGRAMS = {"ttft": "time_to_first_token_seconds", "itl": "inter_token_latency_seconds",
               "e2e": "e2e_request_latency_seconds", "queue": "request_queue_time_seconds"}


def _buckets(h: EngineHistogram) -> Histogram:
    return Histogram(tuple(zip((*h.bounds, math.inf), h.cumulative(), strict=True)))


def reading(replica: Replica) -> PodReading:
    """What the exporter would read from this replica's /metrics, without the text round trip."""
    model = replica.engine.profile.served_model_name
    out = PodReading()
    total_blocks = sum(e.pool.num_blocks for e in replica.engines)
    for e in replica.engines:
        c = e.stats.counters
        out.engines[(model, str(e.index))] = EngineReading(
            gauges={"running": float(len(e.running)), "waiting": float(len(e.waiting)), "kv_usage": e.pool.usage()},
            # One unsplit series per counter (vLLM splits none of these by another label).
            counters={short: {(): c[name]} for short, name in _COUNTERS.items()},
            histograms={short: _buckets(e.stats.histograms[name]) for short, name in _HISTOGRAMS.items()})
        size = e.pool.num_blocks * e.pool.block_size
        out.cache[str(e.index)] = CacheConfig(block_size=e.pool.block_size, num_gpu_blocks_total=total_blocks,
                                              kv_cache_size_tokens=size,
                                              kv_cache_max_concurrency=size / e.profile.max_model_len)
    return out


@dataclass
class _PodWindow:
    history: History
    busy: float = 0.0
    at: float | None = None


@dataclass
class FleetSignals:
    """Per-pod signals at each sample, and the ``MetricsSource`` / KEDA trigger reader over them."""

    fleet: Fleet
    policy: Policy
    window_seconds: float = 60.0
    values: dict[str, dict[str, float]] = field(default_factory=dict)
    """pod -> catalog family -> value, for the pods that have data now."""
    _windows: dict[str, _PodWindow] = field(default_factory=dict)

    def sample(self, now: float) -> None:
        self.values = {}
        live = {r.name for r in self.fleet.replicas}
        for name in [n for n in self._windows if n not in live]:
            del self._windows[name]
        for r in self.fleet.replicas:
            if now < r.ready_at:
                continue  # vLLM's server is not up yet: the exporter has nothing to read
            w = self._windows.setdefault(r.name, _PodWindow(History(self.window_seconds)))
            w.history.add(now, reading(r))
            self.values[r.name] = self._pod(r, w, now)

    def _pod(self, r: Replica, w: _PodWindow, now: float) -> dict[str, float]:
        model = r.engine.profile.served_model_name
        latest = w.history.latest()
        assert latest is not None
        gauges = derive.fold(derive.engine_states(latest.reading, model))
        p95 = window_quantiles(w.history.span(), model, "ttft", (0.95,)).get(0.95)
        out: dict[str, float] = {}
        for name, value in ((WAITING, gauges.waiting), (RUNNING, gauges.running), (KV_USAGE, gauges.kv_usage),
                            (TTFT, p95)):
            if value is not None:
                out[name] = value
        sat = derive.saturation(kv_usage=gauges.kv_usage, waiting=gauges.waiting, ttft_p95=p95,
                                kv_target=self.policy.kv_target, queue_target=self.policy.queue_target,
                                ttft_slo=self.policy.ttft_p95_slo_seconds)
        if sat is not None:
            out[SATURATION] = sat
        busy = r.gpu_busy_seconds()
        if w.at is not None and now > w.at:
            out[GPU_UTIL] = min(1.0, (busy - w.busy) / (now - w.at))
        w.busy, w.at = busy, now
        return out

    def pod_states(self, now: float) -> list[PodState]:
        states = []
        for r in self.fleet.replicas:
            # The pod is Pending while its image is pulled (that share of the cold start), then Running.
            cold = r.engine.profile.cold_start
            pulled = now >= r.created_at + (r.ready_at - r.created_at) * cold.image_pull_s / cold.total_s
            states.append(PodState(r.name, ready=r.ready, phase="Running" if pulled else "Pending",
                                   deleting=r.terminating))
        return states

    # -- MetricsSource (the adapter's answers) --------------------------------------------------
    def pods(self, metric: MetricTarget) -> Mapping[str, float]:
        return {pod: v[metric.metric] for pod, v in self.values.items() if metric.metric in v}

    def _aggregate(self, name: str) -> float | None:
        values = [v[name] for v in self.values.values() if name in v]
        if not values:
            return None
        how = family(name).aggregation
        if how == "sum":
            return sum(values)
        if how == "max":
            return max(values)
        return sum(values) / len(values)

    def object(self, metric: MetricTarget) -> float | None:
        return self._aggregate(metric.metric)

    def external(self, metric: MetricTarget) -> float | None:
        return self._aggregate(metric.metric)

    def trigger(self, trigger: Trigger) -> float | None:
        """KEDA's scaler query for a trigger: the workload's aggregate of a catalog family."""
        return self._aggregate(trigger.metric)
