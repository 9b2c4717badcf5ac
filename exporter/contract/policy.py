"""One definition of the thresholds: alerts, dashboard lines, HPA targets and saturation read it.

A user changes a value in one place (Helm values, or a YAML file / flags for the
generators) and every consumer follows. Defaults come from field guidance: the seed
article, llm-d's workload-variant autoscaler and GKE's vLLM autoscaling guide.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ThresholdsError(ValueError):
    """A thresholds file or value is invalid; the message names the field."""


@dataclass(frozen=True)
class Thresholds:
    """Policy thresholds, each with its unit and why the default."""

    kv_cache_usage_alert: float = field(default=0.85, metadata={
        "unit": "ratio", "doc": "KV-cache usage above which the pod alerts: past ~0.85 vLLM starts "
                                "preempting requests and TTFT climbs."})
    kv_cache_usage_alert_for_seconds: int = field(default=300, metadata={
        "unit": "seconds", "doc": "How long KV usage must stay above the alert line (rides out bursts)."})
    kv_fragmentation_alert: float = field(default=0.20, metadata={
        "unit": "ratio", "doc": "Estimated KV fragmentation above which a pod alerts: a fifth of used "
                                "slots wasted means block size or batch shape is wrong."})
    kv_fragmentation_alert_for_seconds: int = field(default=600, metadata={
        "unit": "seconds", "doc": "Fragmentation is an estimate: require it to hold for 10 minutes."})
    ttft_p95_slo_seconds: float = field(default=0.8, metadata={
        "unit": "seconds", "doc": "Time-to-first-token p95 objective; interactive chat feels slow past ~1 s."})
    ttft_alert_for_seconds: int = field(default=300, metadata={
        "unit": "seconds", "doc": "How long TTFT p95 must exceed the SLO before alerting."})
    queue_target: float = field(default=5.0, metadata={
        "unit": "requests", "doc": "Waiting requests per pod the HPA aims for; the most direct signal of "
                                   "unmet demand."})
    kv_target: float = field(default=0.75, metadata={
        "unit": "ratio", "doc": "KV-cache usage per pod the HPA aims for: headroom below the alert line."})
    queue_backlog_alert_for_seconds: int = field(default=600, metadata={
        "unit": "seconds", "doc": "How long the queue must stay above queue_target and still grow before "
                                  "alerting: the autoscaler had time to act and did not catch up."})
    preemptions_per_second_alert: float = field(default=0.1, metadata={
        "unit": "events per second", "doc": "Sustained preemption rate that alerts: each preemption "
                                            "recomputes a request's KV, so any steady rate wastes GPU time."})
    gpu_memory_usage_alert: float = field(default=0.95, metadata={
        "unit": "ratio", "doc": "GPU memory used/total above which a GPU alerts. vLLM preallocates "
                                "gpu_memory_utilization (0.9 by default), so only growth past it matters."})
    gpu_utilization_target: float = field(default=0.75, metadata={
        "unit": "ratio", "doc": "GPU duty-cycle target. Supported but weak: it reads ~1 at any batch size."})
    scale_down_stabilization_seconds: int = field(default=300, metadata={
        "unit": "seconds", "doc": "HPA scale-down stabilization window; model load takes minutes, so "
                                  "do not give replicas back on a short lull."})

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ThresholdsError(f"thresholds.{f.name}: expected a finite number, got {value!r}")
            if value <= 0:
                raise ThresholdsError(f"thresholds.{f.name}: must be > 0, got {value!r}")
            if f.metadata["unit"] == "ratio" and value > 1:
                raise ThresholdsError(f"thresholds.{f.name}: a ratio must be in (0, 1], got {value!r}")

    def to_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def from_mapping(data: dict[str, Any]) -> Thresholds:
    """Thresholds from a mapping (YAML, Helm values); unknown keys are an error, not ignored."""
    known = {f.name: f for f in dataclasses.fields(Thresholds)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ThresholdsError(f"unknown thresholds: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for key, raw in data.items():
        want = known[key].type
        integral = want in ("int", int) and isinstance(raw, float) and raw.is_integer()
        values[key] = int(raw) if integral else raw
    return Thresholds(**values)


def load(path: Path) -> Thresholds:
    """Thresholds from a YAML file whose top level is a mapping of field names."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ThresholdsError(f"cannot read thresholds file {path}: {exc}") from exc
    if data is None:
        return Thresholds()
    if not isinstance(data, dict):
        raise ThresholdsError(f"thresholds file {path}: top level must be a mapping")
    return from_mapping(data)


def describe() -> list[tuple[str, str, str, str]]:
    """(name, unit, default, doc) for every threshold, for generated docs and --help."""
    defaults = Thresholds()
    return [(f.name, f.metadata["unit"], repr(getattr(defaults, f.name)), f.metadata["doc"])
            for f in dataclasses.fields(Thresholds)]
