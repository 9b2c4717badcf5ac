"""Alert settings: the thresholds object plus what only the rules need (selectors, durations).

Like kubernetes-mixin's ``_config``: every selector, window and duration is named once here
and interpolated into the rules. Policy thresholds come from ``exporter.contract.policy`` (the
one definition shared with dashboards and HPA targets); the fields below are the ones the
thresholds object does not (yet) carry. One YAML mapping or ``--set`` list feeds both.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from exporter.contract.policy import Thresholds, ThresholdsError, from_mapping


@dataclass(frozen=True)
class AlertSettings:
    """Rule-only settings; numbers carry their unit and why the default, as in Thresholds."""

    exporter_selector: str = field(default='job="kvscale-exporter"', metadata={
        "unit": "selector", "doc": "Matchers selecting the exporter's scrape job (kvscale_* series, absent/down)."})
    adapter_selector: str = field(default='job="kvscale-adapter"', metadata={
        "unit": "selector", "doc": "Matchers selecting the custom-metrics adapter's scrape job."})
    kube_state_metrics_selector: str = field(default='job="kube-state-metrics"', metadata={
        "unit": "selector", "doc": "Matchers selecting kube-state-metrics (HPA and pod-owner series)."})
    vllm_selector: str = field(default="", metadata={
        "unit": "selector", "doc": "Matchers for vLLM's own series; empty: the vllm: names identify them."})
    runbook_url_base: str = field(default="https://github.com/kvscale/kvscale/blob/main/docs/runbooks.md", metadata={
        "unit": "url", "doc": "Runbook document; each alert links to #<alert name, lower case>."})
    rate_window_seconds: int = field(default=300, metadata={
        "unit": "seconds", "doc": "Window of rate()/deriv() over vLLM counters and the queue: 5 m smooths "
                                  "scrape jitter yet follows a load change within minutes."})
    target_down_for_seconds: int = field(default=600, metadata={
        "unit": "seconds", "doc": "How long a vLLM target may be unreadable: loading a large model takes minutes."})
    preemptions_alert_for_seconds: int = field(default=300, metadata={
        "unit": "seconds", "doc": "How long the preemption rate must stay above its line (a burst is normal)."})
    admission_rejections_per_second_alert: float = field(default=0.0, metadata={
        "unit": "requests per second", "doc": "Rejection rate above which to alert: any sustained "
                                              "rejection is a client that got an error."})
    admission_rejections_for_seconds: int = field(default=300, metadata={
        "unit": "seconds", "doc": "How long rejections must keep happening."})
    gpu_lost_for_seconds: int = field(default=60, metadata={
        "unit": "seconds", "doc": "A GPU that NVML cannot read for a minute is gone, not busy."})
    xid_window_seconds: int = field(default=600, metadata={
        "unit": "seconds", "doc": "An XID error keeps its alert up this long, so it is seen and triaged."})
    gpu_memory_alert_for_seconds: int = field(default=300, metadata={
        "unit": "seconds", "doc": "How long GPU memory must stay above the line (allocation spikes are brief)."})
    absent_for_seconds: int = field(default=300, metadata={
        "unit": "seconds", "doc": "How long the exporter or adapter may be missing (covers a rolling update)."})
    collector_failing_for_seconds: int = field(default=600, metadata={
        "unit": "seconds", "doc": "How long an exporter collector may keep failing before alerting."})
    hpa_maxed_out_for_seconds: int = field(default=900, metadata={
        "unit": "seconds", "doc": "How long an HPA sits at maxReplicas while saturated: longer than a "
                                  "scale-up plus model load, so it is not just catching up."})
    hpa_metrics_unavailable_for_seconds: int = field(default=600, metadata={
        "unit": "seconds", "doc": "How long an HPA may fail to read its kvscale metrics (an adapter restart "
                                  "takes well under this)."})

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata["unit"] in ("selector", "url"):
                if not isinstance(value, str):
                    raise ThresholdsError(f"alerts.{f.name}: expected a string, got {value!r}")
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ThresholdsError(f"alerts.{f.name}: expected a finite number, got {value!r}")
            if value < 0 or (f.metadata["unit"] == "seconds" and (value <= 0 or value != int(value))):
                raise ThresholdsError(f"alerts.{f.name}: must be a positive whole number of seconds "
                                      f"or a rate >= 0, got {value!r}")


@dataclass(frozen=True)
class AlertsConfig:
    """Everything the rule generators read."""

    thresholds: Thresholds = field(default_factory=Thresholds)
    settings: AlertSettings = field(default_factory=AlertSettings)


def config_from_mapping(data: dict[str, Any]) -> AlertsConfig:
    """Split one flat mapping between Thresholds and AlertSettings; unknown keys are an error."""
    threshold_names = {f.name for f in dataclasses.fields(Thresholds)}
    setting_fields = {f.name: f for f in dataclasses.fields(AlertSettings)}
    unknown = sorted(set(data) - threshold_names - set(setting_fields))
    if unknown:
        known = sorted(threshold_names | set(setting_fields))
        raise ThresholdsError(f"unknown settings: {', '.join(unknown)} (known: {', '.join(known)})")
    thresholds = from_mapping({k: v for k, v in data.items() if k in threshold_names})
    values: dict[str, Any] = {}
    for key, raw in data.items():
        if key not in setting_fields:
            continue
        whole = setting_fields[key].metadata["unit"] == "seconds" and isinstance(raw, float) and raw.is_integer()
        values[key] = int(raw) if whole else raw
    return AlertsConfig(thresholds=thresholds, settings=AlertSettings(**values))


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """``name=value`` pairs (``--set``) to a mapping; values are YAML scalars (0.9, 300, job="x")."""
    data: dict[str, Any] = {}
    for item in assignments:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise ThresholdsError(f"--set expects name=value, got {item!r}")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw  # selectors such as job="x" are not valid YAML scalars: keep the text
        data[name.strip()] = raw if value is None or isinstance(value, (dict, list)) else value
    return data


def load_config(path: Path | None, assignments: list[str]) -> AlertsConfig:
    """The file's mapping (if any) with ``--set`` values on top."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ThresholdsError(f"cannot read settings file {path}: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ThresholdsError(f"settings file {path}: top level must be a mapping")
        data.update(loaded or {})
    data.update(parse_assignments(assignments))
    return config_from_mapping(data)
