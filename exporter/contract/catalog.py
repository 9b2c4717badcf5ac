"""The metric catalog: every family kvscale emits, in one place.

The exporter emits from it; the adapter, dashboards, alerts and the generated
``docs/metrics.md`` read it. Base units, ratios 0-1. Changing a family here is
changing the contract between the parts, so ``docs/metrics.md`` is regenerated
and checked by a test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FamilyType = Literal["gauge", "counter", "info"]
Subsystem = Literal["gpu", "vllm", "exporter"]

GPU_LABELS: tuple[str, ...] = ("node", "gpu", "uuid", "gpu_model", "namespace", "pod", "container")
VLLM_LABELS: tuple[str, ...] = ("namespace", "pod", "model_name")
QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99)


@dataclass(frozen=True)
class Family:
    """One metric family: what a series of it means and which labels it carries."""

    name: str
    type: FamilyType
    unit: str
    help: str
    labels: tuple[str, ...]
    subsystem: Subsystem


def _gpu(name: str, type_: FamilyType, unit: str, help_: str, extra: tuple[str, ...] = ()) -> Family:
    return Family(name, type_, unit, help_, GPU_LABELS + extra, "gpu")


def _vllm(name: str, unit: str, help_: str, extra: tuple[str, ...] = ()) -> Family:
    return Family(name, "gauge", unit, help_, VLLM_LABELS + extra, "vllm")


def _exporter(name: str, type_: FamilyType, unit: str, help_: str, labels: tuple[str, ...]) -> Family:
    return Family(name, type_, unit, help_, labels, "exporter")


_Q = ("quantile",)

FAMILIES: tuple[Family, ...] = (
    # GPU: read from NVML, attributed to pods through the kubelet pod-resources API.
    _gpu("kvscale_gpu_up", "gauge", "", "1 if NVML answered for this GPU in the last collection, 0 if it raised."),
    _gpu("kvscale_gpu_utilization_ratio", "gauge", "ratio",
         "Fraction of the sample period a kernel ran (NVML duty cycle). "
         "A weak scaling signal: near 1 at any batch size."),
    _gpu("kvscale_gpu_memory_used_bytes", "gauge", "bytes", "GPU framebuffer memory in use."),
    _gpu("kvscale_gpu_memory_total_bytes", "gauge", "bytes", "GPU framebuffer memory installed."),
    _gpu("kvscale_gpu_power_watts", "gauge", "watts", "GPU board power draw."),
    _gpu("kvscale_gpu_temperature_celsius", "gauge", "celsius", "GPU core temperature."),
    _gpu("kvscale_gpu_sm_clock_hertz", "gauge", "hertz", "Current SM clock."),
    _gpu("kvscale_gpu_xid_errors_total", "counter", "",
         "XID error events seen since the exporter started, by XID code.", ("xid",)),
    # vLLM: one series per pod, data-parallel engines folded.
    _vllm("kvscale_vllm_up", "", "1 if the pod's vLLM /metrics was scraped and read in the last collection, else 0."),
    _vllm("kvscale_vllm_requests_running", "requests", "Requests in the running batch, summed over engines."),
    _vllm("kvscale_vllm_requests_waiting", "requests",
          "Requests waiting to be scheduled (deferred ones included), summed over engines."),
    _vllm("kvscale_vllm_kv_cache_usage_ratio", "ratio",
          "Fraction of GPU KV-cache blocks held by requests, block-weighted over engines. "
          "Evictable prefix-cache blocks count as free."),
    _vllm("kvscale_vllm_kv_cache_capacity_tokens", "tokens", "Tokens the GPU KV cache holds, summed over engines."),
    _vllm("kvscale_vllm_kv_cache_fragmentation_ratio", "ratio",
          "ESTIMATE of KV slots allocated but unfilled (each running request's half-empty last block) "
          "over slots in use. Absent for hybrid models."),
    _vllm("kvscale_vllm_ttft_seconds", "seconds",
          "Time to first token over the sliding window, from vLLM's histogram, interpolated as "
          "PromQL histogram_quantile. Absent when no request finished prefill in the window.", _Q),
    _vllm("kvscale_vllm_inter_token_latency_seconds", "seconds",
          "Gap between output events of a request over the sliding window (quantile).", _Q),
    _vllm("kvscale_vllm_e2e_latency_seconds", "seconds",
          "End-to-end request latency over the sliding window (quantile).", _Q),
    _vllm("kvscale_vllm_queue_time_seconds", "seconds",
          "Time requests spent queued before first scheduled, over the sliding window (quantile).", _Q),
    _vllm("kvscale_vllm_prompt_tokens_per_second", "tokens per second",
          "Prompt tokens processed per second over the sliding window."),
    _vllm("kvscale_vllm_generation_tokens_per_second", "tokens per second",
          "Output tokens generated per second over the sliding window."),
    _vllm("kvscale_vllm_preemptions_per_second", "events per second",
          "Preemptions per second over the sliding window."),
    _vllm("kvscale_vllm_admission_rejections_per_second", "requests per second",
          "Requests refused by vLLM's frontend queue limits per second over the sliding window, all reasons. "
          "Absent on vLLM versions without admission limits."),
    _vllm("kvscale_vllm_prefix_cache_hit_ratio", "ratio",
          "Prefix-cache hit tokens over queried tokens in the sliding window. Absent with no queries."),
    _vllm("kvscale_vllm_cost_per_million_tokens_dollars", "dollars",
          "GPU price per hour x GPUs of the pod / (prompt + generation tokens per second x 3600) x 1e6. "
          "Absent when the pod processed no tokens in the window."),
    _vllm("kvscale_vllm_saturation_ratio", "ratio",
          "How full the pod is against policy, 1 = at target: max(kv_usage/kv_target, "
          "waiting/queue_target, ttft_p95/ttft_slo) over the terms available."),
    # The exporter itself.
    _exporter("kvscale_exporter_collector_success", "gauge", "",
              "1 if the collector's last run succeeded, 0 if it failed (the cause is logged).", ("collector",)),
    _exporter("kvscale_exporter_collector_duration_seconds", "gauge", "seconds",
              "Wall time of the collector's last run.", ("collector",)),
    _exporter("kvscale_exporter_target_scrape_duration_seconds", "gauge", "seconds",
              "Wall time of the last scrape of a vLLM target.", ("namespace", "pod")),
    _exporter("kvscale_exporter_target_errors_total", "counter", "",
              "Failed scrapes of a vLLM target since the exporter started, by cause.", ("namespace", "pod", "reason")),
    _exporter("kvscale_exporter_build_info", "info", "", "Always 1; labels carry the exporter's version.",
              ("version",)),
)

BY_NAME: dict[str, Family] = {family.name: family for family in FAMILIES}


def family(name: str) -> Family:
    """The catalog entry for ``name``; a typo fails loudly at import time of the caller."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"{name!r} is not in the kvscale metric catalog") from None


def of_subsystem(subsystem: Subsystem) -> tuple[Family, ...]:
    return tuple(f for f in FAMILIES if f.subsystem == subsystem)
