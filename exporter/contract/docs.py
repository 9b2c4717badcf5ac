"""Generate docs/metrics.md from the catalog and the thresholds (``python -m exporter.contract.docs``).

The committed file is checked against a fresh render by a test, so the reference
never drifts from what the exporter emits.
"""

from __future__ import annotations

import sys
from pathlib import Path

from exporter.contract.catalog import CACHE_CONFIG, FAMILIES, QUANTILES, Family, Subsystem
from exporter.contract.policy import describe
from exporter.contract.vllm_names import COUNTERS, GAUGES, HISTOGRAMS

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"

_SECTIONS: tuple[tuple[Subsystem, str, str], ...] = (
    ("vllm", "vLLM, one series per pod",
     "Labels `namespace`, `pod`, `model_name`. Data-parallel engines of a pod are folded: counts summed, "
     "KV usage weighted by each engine's GPU blocks. Quantile families carry `quantile` "
     f"({', '.join(str(q) for q in QUANTILES)} by default) and are computed over the sliding window "
     "(default 60 s) from the increase of vLLM's histogram buckets, interpolated exactly as PromQL's "
     "`histogram_quantile`; with no observation in the window the series is absent. A target that is "
     "down has `kvscale_vllm_up 0` and no other series."),
    ("gpu", "GPU",
     "Device series carry the device's identity only: `node`, `gpu`, `uuid`, `gpu_model` (a MIG device's "
     "`gpu` is `INDEX/GI`). Who holds a device is `kvscale_gpu_allocation_info`, joined "
     "`on (node, uuid)`, so a rescheduled pod never starts new device series. See [gpu.md](gpu.md) for "
     "MIG, time-slicing and DRA."),
    ("exporter", "The exporter itself", "Health of the exporter's collectors and scrapes."),
)

_NAMES = {**GAUGES, **COUNTERS, **HISTOGRAMS, CACHE_CONFIG: (CACHE_CONFIG,)}


def _source(fam: Family) -> str:
    """The vLLM series (newest name; older ones it also reads) or NVML calls a family comes from."""
    if fam.subsystem != "vllm":
        return ", ".join(f"`{s}`" for s in fam.source) or "–"
    parts = []
    for short in fam.source:
        newest, *older = _NAMES[short]
        parts.append(f"`vllm:{newest}`" + (f" (or `{'`, `'.join(older)}`)" if older else ""))
    return ", ".join(parts) or "the scrape"


def _scaling_table() -> list[str]:
    rows = ["### What the adapter serves", "",
            "Families served to the HPA (`custom.metrics.k8s.io`) and KEDA. An Object metric "
            "(`deployments.apps/NAME/<metric>`) aggregates the workload's pods as declared here; windowed "
            "families carry `windowSeconds` (v1beta2) / `window` (v1beta1) = the exporter's window.", "",
            "| metric | over a workload's pods | windowed |", "|---|---|---|"]
    rows += [f"| `{f.name}` | {f.aggregation} | {'yes' if f.windowed else 'no'} |"
             for f in FAMILIES if f.autoscaling]
    return [*rows, ""]


_SCALING = _scaling_table()

_NOTES = """## How the derived values are computed

- **KV-cache fragmentation** is an *estimate*: vLLM does not export live tokens. Per engine the
  expected waste is `R·(B−1)/2` tokens (each of the R running requests leaves its last block
  half full on average, B = block size) against `u·(N−1)·B` used slots (u = KV usage, N = the
  engine's GPU blocks; vLLM's `num_gpu_blocks` is summed over data-parallel engines, so it is
  divided by their count). Per pod: total waste over total used slots, capped at 1. Absent when
  no slot is used and for hybrid KV caches (sliding-window or Mamba groups beside full
  attention), told apart by blocks per request: one full-attention group takes ⌈L/B⌉ blocks
  for a request of max_model_len L, so `kv_cache_max_concurrency`·⌈L/B⌉ is a whole number of
  blocks that fits `num_gpu_blocks`. `kv_cache_size_tokens` ≠ N·B alone is no sign of one: vLLM
  reports the first ready engine's tokens beside the blocks summed over engines, and L need
  not be a multiple of B (rule and invariants: `exporter/vllm/kv_geometry.py`).
- **Why fragmentation is not measured exactly** (checked against vLLM 0.33.0; issue 15). The exact
  value is, per engine step, the sum over requests holding KV of allocated blocks × B −
  `num_computed_tokens`; computing it is cheap (O(running requests × KV cache groups) per step),
  but its inputs and the way out are the obstacle. `vllm.general_plugins` do load in the EngineCore
  process (`vllm/v1/engine/core.py`, `EngineCore.__init__` calls `load_general_plugins()`), yet
  `register()` gets no handle on the scheduler: reading `SingleTypeKVCacheManager.req_to_blocks`
  (`vllm/v1/core/single_type_kv_cache_manager.py`) and `Request.num_computed_tokens` each step
  means wrapping a private method such as `Scheduler.make_stats` (`vllm/v1/core/sched/scheduler.py`),
  whose signature changed across 0.12–0.33. The only path from EngineCore to the frontend's
  stat loggers and /metrics is `EngineCoreOutputs.scheduler_stats` (`vllm/v1/engine/__init__.py`),
  a `SchedulerStats` dataclass with fixed fields (`vllm/v1/metrics/stats.py`) serialized by msgspec:
  a new figure needs a patched class on both sides; its one free-form dict, `kv_connector_stats`,
  is filled only by a configured KV connector. Upstream closed the attempts to carry such data
  (token-level KV metrics, vllm PRs #29836 and #30289; `extras` on `FinishedRequestStats`, #34161).
  A side channel (a file, shared memory, a port per EngineCore) would miss engines on other nodes
  under data parallelism. So kvscale keeps the estimate: it tells the expected tail waste of running
  requests' last blocks, and cannot see waste from preemption and recomputation, aborted requests,
  blocks allocated ahead for speculative tokens or chunks, nor prefix-shared blocks (counted once).
  An upstream `SchedulerStats` field is the clean fix.
- **Latency quantiles from the stat-logger plugin.** Where `kvscale[vllm]` runs inside vLLM, the
  four latency families take its exact quantiles (`kvscale_engine_*` on vLLM's /metrics: numpy's
  linear interpolation over the raw values of the plugin's own window, default 60 s) instead of
  interpolating vLLM's buckets, and `kvscale_vllm_latency_source_info` says which source each
  latency uses. A quantile the plugin does not serve still comes from the histogram; an empty
  plugin window means no quantile (not the histogram's). The plugin's series are absent with
  `--api-server-count > 1` (vLLM then serves a multiprocess registry), and the exporter falls back.
- **Saturation** is how full a pod is against policy, 1.0 = at target:
  `max(kv_usage / kv_target, waiting / queue_target, ttft_p95 / ttft_p95_slo_seconds)` over the
  terms available.
- **Cost per 1M tokens** = GPU price per hour × GPUs of the pod ÷ ((prompt + generation tokens per
  second) × 3600) × 1e6. GPUs of the pod: those attributed to it through the kubelet, else its
  `nvidia.com/gpu` request, else `--gpus-per-pod`. Absent without a price (`--gpu-price-per-hour`)
  or when the pod processed no token in the window.
- **Rates** are the increase over the window divided by its span, as PromQL's
  `sum(increase())`: per series (each engine, each `reason` of a split counter), a counter that
  drops (a restarted vLLM) restarts from zero for that series, and a series missing from one
  scrape is a gap, not a reset; the series' increases are then summed, so rates are never negative.
"""


_POLICY_INTRO = (
    "One policy (`exporter/contract/policy.py`) feeds the alerts, the dashboards' threshold lines, the HPA "
    "targets, the exporter's saturation ratio and the adapter's default quantile. Every command "
    "(`kvscale-exporter`, `kvscale-adapter`, `kvscale-alerts`, `kvscale-dashboards`) reads the same YAML file "
    "with `--policy FILE` or the environment variable `KVSCALE_POLICY`: a flat mapping of the keys below, or "
    "the same mapping nested under a top-level `policy:` key (a Helm values excerpt). Every key is optional; "
    "an unknown key or a bad value stops the command with the same message. "
    "`policy.json_schema()` gives the JSON Schema of the mapping.")


def render() -> str:
    out = ["# kvscale metrics", "",
           "Generated from `exporter/contract/catalog.py` and `exporter/contract/policy.py` by "
           "`python -m exporter.contract.docs`; "
           "do not edit by hand. Base units; ratios are 0–1.", ""]
    for subsystem, title, intro in _SECTIONS:
        out += [f"## {title}", "", intro, "", "| metric | type | unit | labels | meaning | read from |",
                "|---|---|---|---|---|---|"]
        for fam in FAMILIES:
            if fam.subsystem == subsystem:
                labels = ", ".join(f"`{label}`" for label in fam.labels)
                out.append(f"| `{fam.name}` | {fam.type} | {fam.unit or '–'} | {labels} | {fam.help} | "
                           f"{_source(fam)} |")
        out.append("")
        if subsystem == "vllm":
            out += _SCALING
    out.append(_NOTES)
    out += ["## Policy", "", _POLICY_INTRO, "", "| key | unit | default | why |", "|---|---|---|---|"]
    out += [f"| `{name}` | {unit} | `{default}` | {doc} |" for name, unit, default, doc in describe()]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = render()
    if args == ["--check"]:
        if DOC_PATH.read_text(encoding="utf-8") != text:
            print(f"{DOC_PATH} is stale: run python -m exporter.contract.docs", file=sys.stderr)
            return 1
        return 0
    DOC_PATH.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
