"""The metric catalog: every family kvscale emits, and what it means to the other parts.

The exporter emits from it; the adapter, dashboards, alerts and the generated
``docs/metrics.md`` read it, and no other list of families exists (a test scans the
packages for one). Base units, ratios 0-1. Beside name, type, unit and labels, each
family declares:

- ``aggregation``: how it adds up over the pods of a workload (an Object metric such as
  ``deployments.apps/NAME``): ``sum`` for counts and rates, ``max`` where the worst pod
  governs (latency quantiles, saturation), ``mean`` for per-pod ratios; None when the
  family is not served per workload;
- ``windowed``: computed over the exporter's sliding window (the adapter then serves
  ``windowSeconds``); instantaneous gauges are not;
- ``autoscaling``: servable to the HPA and KEDA through the adapter;
- ``source``: the vLLM series it is read from, as short names of
  :mod:`exporter.contract.vllm_names` (NVML readings for GPU families).

Invariants (checked at import): an autoscaling family declares its aggregation; a family
with a ``quantile`` label is windowed and aggregates by ``max``; a vLLM source names a
series the name table knows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from exporter.contract.vllm_names import COUNTERS, GAUGES, HISTOGRAMS

FamilyType = Literal["gauge", "counter", "info"]
Subsystem = Literal["gpu", "vllm", "exporter"]
Aggregation = Literal["sum", "max", "mean"]

CACHE_CONFIG = "cache_config_info"
"""vLLM's cache configuration info series (block size, GPU blocks): a source, not a name-table entry."""
VLLM_SOURCES = frozenset({*GAUGES, *COUNTERS, *HISTOGRAMS, CACHE_CONFIG})

GPU_LABELS: tuple[str, ...] = ("node", "gpu", "uuid", "gpu_model")
"""What identifies a device (a MIG device's ``gpu`` is "INDEX/GI"): never who holds it, so a rescheduled
pod or a failed kubelet call does not start new series (alerts keep their ``for:``)."""
GPU_ALLOCATION_LABELS: tuple[str, ...] = ("node", "gpu", "uuid", "namespace", "pod", "container", "pod_uid",
                                          "resource", "claim")
"""Who holds a device, joined in PromQL ``on (node, uuid)`` (the kube-state-metrics info pattern)."""
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
    aggregation: Aggregation | None
    windowed: bool
    autoscaling: bool
    source: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.autoscaling and self.aggregation is None:
            raise ValueError(f"{self.name}: an autoscaling family must declare how it aggregates over pods")
        if self.quantiled and not (self.windowed and self.aggregation in ("max", None)):
            raise ValueError(f"{self.name}: a quantile family is windowed, and its pods do not add up (max)")
        if self.subsystem == "vllm":
            unknown = set(self.source) - VLLM_SOURCES
            if unknown:
                raise ValueError(f"{self.name}: source names no vLLM series: {sorted(unknown)}")

    @property
    def quantiled(self) -> bool:
        return "quantile" in self.labels


def _gpu(name: str, type_: FamilyType, unit: str, help_: str, *, source: str,
         extra: tuple[str, ...] = (), labels: tuple[str, ...] = GPU_LABELS) -> Family:
    return Family(name, type_, unit, help_, labels + extra, "gpu", aggregation=None, windowed=False,
                  autoscaling=False, source=(source,))


def _vllm(name: str, unit: str, help_: str, *, aggregation: Aggregation | None, windowed: bool,
          source: tuple[str, ...], autoscaling: bool = True, extra: tuple[str, ...] = ()) -> Family:
    return Family(name, "gauge", unit, help_, VLLM_LABELS + extra, "vllm", aggregation=aggregation,
                  windowed=windowed, autoscaling=autoscaling, source=source)


def _exporter(name: str, type_: FamilyType, unit: str, help_: str, labels: tuple[str, ...]) -> Family:
    return Family(name, type_, unit, help_, labels, "exporter", aggregation=None, windowed=False,
                  autoscaling=False, source=())


_Q = ("quantile",)

FAMILIES: tuple[Family, ...] = (
    # GPU: read from NVML, keyed on the device; who holds it is its own info series (kubelet pod-resources).
    _gpu("kvscale_gpu_up", "gauge", "", "1 if NVML answered for this GPU in the last collection, 0 if it raised.",
         source="nvmlDeviceGetHandleByIndex"),
    _gpu("kvscale_gpu_utilization_ratio", "gauge", "ratio",
         "Fraction of the sample period a kernel ran (NVML duty cycle). "
         "A weak scaling signal: near 1 at any batch size.", source="nvmlDeviceGetUtilizationRates"),
    _gpu("kvscale_gpu_memory_used_bytes", "gauge", "bytes", "GPU framebuffer memory in use.",
         source="nvmlDeviceGetMemoryInfo"),
    _gpu("kvscale_gpu_memory_total_bytes", "gauge", "bytes", "GPU framebuffer memory installed.",
         source="nvmlDeviceGetMemoryInfo"),
    _gpu("kvscale_gpu_power_watts", "gauge", "watts", "GPU board power draw.", source="nvmlDeviceGetPowerUsage"),
    _gpu("kvscale_gpu_temperature_celsius", "gauge", "celsius", "GPU core temperature.",
         source="nvmlDeviceGetTemperature"),
    _gpu("kvscale_gpu_sm_clock_hertz", "gauge", "hertz", "Current SM clock.", source="nvmlDeviceGetClockInfo"),
    _gpu("kvscale_gpu_xid_errors_total", "counter", "",
         "XID error events seen since the exporter started, by XID code. Kept while the GPU is down "
         "(kvscale_gpu_up 0).", source="nvmlEventSetWait", extra=("xid",)),
    # GPU health: each signal is its own NVML call, which a device or driver may not support.
    _gpu("kvscale_gpu_health_supported", "gauge", "",
         "1 if the device and driver answer this health signal's NVML query, 0 if unsupported (older drivers, "
         "GPUs without ECC, MIG devices): its series are then absent, not 0.", source="nvmlDevice* health queries",
         extra=("signal",)),
    _gpu("kvscale_gpu_health_success", "gauge", "",
         "For a supported health signal: 1 if its last read worked, 0 if NVML raised (the cause is logged).",
         source="nvmlDevice* health queries", extra=("signal",)),
    _gpu("kvscale_gpu_ecc_errors_total", "counter", "",
         "ECC memory errors by error_type (corrected, uncorrected) and counter_type (volatile: since the "
         "driver loaded; aggregate: over the GPU's life).", source="nvmlDeviceGetTotalEccErrors",
         extra=("error_type", "counter_type")),
    _gpu("kvscale_gpu_clock_event_active", "gauge", "",
         "1 while this reason holds the clocks down (formerly throttle reasons): sw_power_cap, hw_slowdown, "
         "sw_thermal_slowdown, hw_thermal_slowdown, hw_power_brake_slowdown, ...; 0 otherwise.",
         source="nvmlDeviceGetCurrentClocksEventReasons", extra=("reason",)),
    _gpu("kvscale_gpu_retired_pages", "gauge", "",
         "Framebuffer pages retired by cause (single_bit_ecc, double_bit_ecc); pre-Ampere page retirement.",
         source="nvmlDeviceGetRetiredPages", extra=("cause",)),
    _gpu("kvscale_gpu_retired_pages_pending", "gauge", "",
         "1 if a page retirement waits for the next GPU reset.", source="nvmlDeviceGetRetiredPagesPendingStatus"),
    _gpu("kvscale_gpu_remapped_rows", "gauge", "",
         "Memory rows remapped by cause (correctable, uncorrectable); Ampere and later.",
         source="nvmlDeviceGetRemappedRows", extra=("cause",)),
    _gpu("kvscale_gpu_row_remap_pending", "gauge", "",
         "1 if a row remapping waits for the next GPU reset.", source="nvmlDeviceGetRemappedRows"),
    _gpu("kvscale_gpu_row_remap_failure", "gauge", "",
         "1 if a row remapping failed: the GPU should be replaced.", source="nvmlDeviceGetRemappedRows"),
    _gpu("kvscale_gpu_pcie_replays_total", "counter", "",
         "PCIe replays (link-level retransmissions) since the driver loaded.",
         source="nvmlDeviceGetPcieReplayCounter"),
    _gpu("kvscale_gpu_allocation_info", "info", "",
         "Always 1: the container holding a device (GPU or MIG device), from the kubelet's device-plugin or "
         "DRA allocations; several series for a shared device. resource is the device-plugin resource or the "
         "DRA driver, claim the ResourceClaim. Join on (node, uuid).", source="podresources List",
         labels=GPU_ALLOCATION_LABELS),
    # vLLM: one series per pod, data-parallel engines folded.
    # up is how many pods serve (sum); the adapter does not serve it: a down pod is left out instead.
    _vllm("kvscale_vllm_up", "", "1 if the pod's vLLM /metrics was scraped and read in the last collection, else 0.",
          aggregation="sum", windowed=False, autoscaling=False, source=()),
    _vllm("kvscale_vllm_requests_running", "requests", "Requests in the running batch, summed over engines.",
          aggregation="sum", windowed=False, source=("running",)),
    _vllm("kvscale_vllm_requests_waiting", "requests",
          "Requests waiting to be scheduled (deferred ones included), summed over engines.",
          aggregation="sum", windowed=False, source=("waiting",)),
    _vllm("kvscale_vllm_kv_cache_usage_ratio", "ratio",
          "Fraction of GPU KV-cache blocks held by requests, block-weighted over engines. "
          "Evictable prefix-cache blocks count as free.", aggregation="mean", windowed=False, source=("kv_usage",)),
    _vllm("kvscale_vllm_kv_cache_capacity_tokens", "tokens", "Tokens the GPU KV cache holds, summed over engines.",
          aggregation="sum", windowed=False, source=(CACHE_CONFIG,)),
    _vllm("kvscale_vllm_kv_cache_fragmentation_ratio", "ratio",
          "ESTIMATE of KV slots allocated but unfilled (each running request's half-empty last block) "
          "over slots in use. Absent for hybrid KV caches (sliding-window or Mamba groups beside full attention), "
          "told apart by blocks per request; kept under data parallelism and any max_model_len.",
          aggregation="mean", windowed=False,
          source=("running", "kv_usage", CACHE_CONFIG)),
    _vllm("kvscale_vllm_ttft_seconds", "seconds",
          "Time to first token over the sliding window, from vLLM's histogram, interpolated as "
          "PromQL histogram_quantile; exact when kvscale's stat-logger plugin runs in vLLM (each latency family: "
          "see kvscale_vllm_latency_source_info). Absent when no request finished prefill in the window.",
          aggregation="max", windowed=True, source=("ttft",), extra=_Q),
    _vllm("kvscale_vllm_inter_token_latency_seconds", "seconds",
          "Gap between output events of a request over the sliding window (quantile).",
          aggregation="max", windowed=True, source=("itl",), extra=_Q),
    Family("kvscale_vllm_latency_source_info", "info", "",
           "Always 1: where the pod's latency quantiles come from, per latency (ttft, itl, e2e, queue): "
           "source=\"plugin\" when kvscale's stat-logger plugin runs in vLLM (exact quantiles of the raw values "
           "over its own window, kvscale_engine_* on vLLM's /metrics), \"histogram\" otherwise (vLLM's buckets "
           "interpolated as PromQL does, so the bucket layout bounds the error).",
           (*VLLM_LABELS, "latency", "source"), "vllm", aggregation=None, windowed=False, autoscaling=False,
           source=("ttft", "itl", "e2e", "queue")),
    _vllm("kvscale_vllm_e2e_latency_seconds", "seconds",
          "End-to-end request latency over the sliding window (quantile).",
          aggregation="max", windowed=True, source=("e2e",), extra=_Q),
    _vllm("kvscale_vllm_queue_time_seconds", "seconds",
          "Time requests spent queued before first scheduled, over the sliding window (quantile).",
          aggregation="max", windowed=True, source=("queue",), extra=_Q),
    _vllm("kvscale_vllm_prompt_tokens_per_second", "tokens per second",
          "Prompt tokens processed per second over the sliding window.",
          aggregation="sum", windowed=True, source=("prompt_tokens",)),
    _vllm("kvscale_vllm_generation_tokens_per_second", "tokens per second",
          "Output tokens generated per second over the sliding window.",
          aggregation="sum", windowed=True, source=("generation_tokens",)),
    _vllm("kvscale_vllm_preemptions_per_second", "events per second",
          "Preemptions per second over the sliding window.",
          aggregation="sum", windowed=True, source=("preemptions",)),
    _vllm("kvscale_vllm_admission_rejections_per_second", "requests per second",
          "Requests refused by vLLM's frontend queue limits per second over the sliding window, all reasons "
          "(each reason's counter reset-corrected on its own, then summed). "
          "Absent on vLLM versions without admission limits.",
          aggregation="sum", windowed=True, source=("admission_rejections",)),
    _vllm("kvscale_vllm_prefix_cache_hit_ratio", "ratio",
          "Prefix-cache hit tokens over queried tokens in the sliding window. Absent with no queries.",
          aggregation="mean", windowed=True, source=("prefix_hits", "prefix_queries")),
    _vllm("kvscale_vllm_cost_per_million_tokens_dollars", "dollars",
          "GPU price per hour x GPUs of the pod / (prompt + generation tokens per second x 3600) x 1e6. "
          "Absent when the pod processed no tokens in the window.",
          aggregation="mean", windowed=True, source=("prompt_tokens", "generation_tokens")),
    _vllm("kvscale_vllm_saturation_ratio", "ratio",
          "How full the pod is against policy, 1 = at target: max(kv_usage/kv_target, "
          "waiting/queue_target, ttft_p95/ttft_slo) over the terms available.",
          aggregation="max", windowed=False, source=("kv_usage", "waiting", "ttft")),
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


def autoscaling() -> tuple[Family, ...]:
    """The families the adapter serves to the HPA and KEDA."""
    return tuple(f for f in FAMILIES if f.autoscaling)
