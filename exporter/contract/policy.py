"""The policy: every threshold, SLO, target, alert duration and selector, in one typed object.

A user changes a value in one place (the Helm values' ``policy:``, or a YAML file given to
any command with ``--policy FILE`` / ``KVSCALE_POLICY``) and the alerts, the dashboards'
threshold lines, the HPA targets, the exporter's saturation and the adapter's default
quantile all follow. Defaults come from field guidance: the seed article, llm-d's
workload-variant autoscaler and GKE's vLLM autoscaling guide. Each field's metadata (unit,
why the default, bounds) is the single source of validation, ``describe()`` (docs) and
``json_schema()`` (the chart's values.schema.json).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import sys
import typing
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ENV_NAME = "KVSCALE_POLICY"
FLAG_HELP = (f"YAML policy file: thresholds, SLOs, targets, alert durations, selectors (keys in "
             f"docs/metrics.md#policy; flat, or nested under 'policy:'). env: {ENV_NAME}")

# JSON Schema bounds, also what __post_init__ enforces.
_RATIO = {"exclusiveMinimum": 0, "maximum": 1}
_POSITIVE = {"exclusiveMinimum": 0}
_AT_LEAST_ZERO = {"minimum": 0}
_WHOLE_SECONDS = {"minimum": 1}
_QUANTILE = {"exclusiveMinimum": 0, "exclusiveMaximum": 1}
_MATCHERS = {"pattern": r"^[^{}\n]*$"}  # interpolated between {} in PromQL: braces would break the query
_URL = {"minLength": 1}
_SEVERITY = {"enum": ["critical", "warning", "info"], "minLength": 1}
_LABEL_NAME = {"pattern": r"^[a-zA-Z_][a-zA-Z0-9_]*$", "minLength": 1}
_JSON_TYPES = {"float": "number", "int": "integer", "str": "string"}


def _f(default: Any, unit: str, doc: str, bounds: dict[str, Any]) -> Any:
    return field(default=default, metadata={"unit": unit, "doc": doc, "bounds": bounds})


def _ratio(default: float, doc: str) -> Any:
    return _f(default, "ratio", doc, _RATIO)


def _seconds(default: int, doc: str) -> Any:
    return _f(default, "seconds", doc, _WHOLE_SECONDS)


def _severity(default: str, doc: str) -> Any:
    return _f(default, "severity", doc, _SEVERITY)


def _selector(default: str, doc: str, *, required: bool = False) -> Any:
    return _f(default, "PromQL matchers", doc, {**_MATCHERS, "minLength": 1} if required else _MATCHERS)


class PolicyError(ValueError):
    """A policy file or value is invalid; the message names the key, where it came from, and why."""


@dataclass(frozen=True)
class Policy:
    """The policy; each field carries its unit and why the default."""

    # Scaling targets and saturation (exporter, adapter, HPA).
    queue_target: float = _f(5.0, "requests", "Waiting requests per pod the HPA aims for; the most direct "
                                              "signal of unmet demand.", _POSITIVE)
    kv_target: float = _ratio(0.75, "KV-cache usage per pod the HPA aims for: headroom below the alert line.")
    ttft_p95_slo_seconds: float = _f(0.8, "seconds", "Time-to-first-token p95 objective; interactive chat "
                                                     "feels slow past ~1 s.", _POSITIVE)
    gpu_utilization_target: float = _ratio(0.75, "GPU duty-cycle target. Supported but weak: it reads ~1 at "
                                                 "any batch size.")
    scale_down_stabilization_seconds: int = _seconds(300, "HPA scale-down stabilization window; model load "
                                                          "takes minutes, so do not give replicas back on a "
                                                          "short lull.")
    adapter_default_quantile: float = _f(0.95, "quantile", "Quantile the adapter serves for a quantile family "
                                                           "when the HPA's metric selector names none: p95 "
                                                           "matches the TTFT SLO. Must be one the exporter "
                                                           "emits (its --quantiles).", _QUANTILE)
    # Alert lines and how long each must hold.
    kv_cache_usage_alert: float = _ratio(0.85, "KV-cache usage above which the pod alerts: past ~0.85 vLLM "
                                               "starts preempting requests and TTFT climbs.")
    kv_cache_usage_alert_for_seconds: int = _seconds(300, "How long KV usage must stay above the alert line "
                                                          "(rides out bursts).")
    kv_fragmentation_alert: float = _ratio(0.20, "Estimated KV fragmentation above which a pod alerts: a fifth "
                                                 "of used slots wasted means block size or batch shape is wrong.")
    kv_fragmentation_alert_for_seconds: int = _seconds(600, "Fragmentation is an estimate: require it to hold "
                                                            "for 10 minutes.")
    ttft_alert_for_seconds: int = _seconds(300, "How long TTFT p95 must exceed the SLO before alerting.")
    queue_backlog_alert_for_seconds: int = _seconds(600, "How long the queue must stay above queue_target and "
                                                         "still grow before alerting: the autoscaler had time "
                                                         "to act and did not catch up.")
    preemptions_per_second_alert: float = _f(0.1, "events per second", "Sustained preemption rate that alerts: "
                                                  "each preemption recomputes a request's KV, so any steady "
                                                  "rate wastes GPU time.", _POSITIVE)
    preemptions_alert_for_seconds: int = _seconds(300, "How long the preemption rate must stay above its line "
                                                       "(a burst is normal).")
    admission_rejections_per_second_alert: float = _f(0.0, "requests per second", "Rejection rate above which "
                                                      "to alert: any sustained rejection is a client that got "
                                                      "an error.", _AT_LEAST_ZERO)
    admission_rejections_for_seconds: int = _seconds(300, "How long rejections must keep happening.")
    # Ratio lines of the outcome alerts (their durations and severities are below).
    request_error_ratio_alert: float = _ratio(0.05, "Share of a model's finished requests that end in error "
                                                    "(finished_reason=\"error\") above which it alerts.")
    request_abort_ratio_alert: float = _ratio(0.2, "Share of finished requests aborted (client gone or cancelled) "
                                                   "above which it alerts: some aborts are users pressing stop, "
                                                   "a fifth means clients give up waiting.")
    adapter_error_ratio_alert: float = _ratio(0.05, "Share of the adapter's API requests answered 5xx above which "
                                                    "it alerts: the HPA and KEDA see failures, not values.")
    target_down_for_seconds: int = _seconds(600, "How long a vLLM target may be unreadable: loading a large "
                                                 "model takes minutes.")
    gpu_memory_usage_alert: float = _ratio(0.95, "GPU memory used/total above which a GPU alerts. vLLM "
                                                 "preallocates gpu_memory_utilization (0.9 by default), so only "
                                                 "growth past it matters.")
    gpu_memory_alert_for_seconds: int = _seconds(300, "How long GPU memory must stay above the line "
                                                      "(allocation spikes are brief).")
    gpu_lost_for_seconds: int = _seconds(60, "A GPU that NVML cannot read for a minute is gone, not busy.")
    xid_window_seconds: int = _seconds(600, "An XID error keeps its alert up this long, so it is seen and "
                                            "triaged.")
    absent_for_seconds: int = _seconds(300, "How long the exporter or adapter may be missing (covers a rolling "
                                            "update).")
    collector_failing_for_seconds: int = _seconds(600, "How long an exporter collector may keep failing before "
                                                       "alerting.")
    hpa_maxed_out_for_seconds: int = _seconds(900, "How long an HPA sits at maxReplicas while saturated: longer "
                                                   "than a scale-up plus model load, so it is not just catching up.")
    hpa_metrics_unavailable_for_seconds: int = _seconds(600, "How long an HPA may fail to read its kvscale "
                                                             "metrics (an adapter restart takes well under this).")
    rate_window_seconds: int = _seconds(300, "Window of rate()/deriv() over vLLM counters and the queue in the "
                                             "rules: 5 m smooths scrape jitter yet follows a load change within "
                                             "minutes.")
    # Latency SLOs beyond TTFT, and the traffic floor every SLO alert applies.
    itl_p95_slo_seconds: float = _f(0.1, "seconds", "Inter-token latency p95 objective: 10 tokens per second per "
                                                    "stream is about reading speed; slower output visibly stutters.",
                                    _POSITIVE)
    itl_alert_for_seconds: int = _seconds(300, "How long ITL p95 must exceed its SLO before alerting.")
    e2e_p95_slo_seconds: float = _f(60.0, "seconds", "End-to-end request latency p95 objective: it grows with "
                                                     "output length, so the default only catches requests hanging "
                                                     "for a minute; set it from your traffic's length mix.", _POSITIVE)
    e2e_alert_for_seconds: int = _seconds(300, "How long end-to-end p95 must exceed its SLO before alerting.")
    slo_min_requests_per_second: float = _f(0.1, "requests per second", "Traffic floor of the latency SLO alerts: a "
                                            "pod finishing fewer requests (vLLM's request_success_total, when "
                                            "Prometheus scrapes vLLM) does not alert; at 0.1/s a 5 m window holds "
                                            "30 requests, enough for a p95 to mean something.", _AT_LEAST_ZERO)
    latency_slo_severity: str = _severity("critical", "Severity of the TTFT, ITL and end-to-end SLO alerts: with "
                                                      "the traffic floor, users are waiting now.")
    # Engines, models and the queue.
    engine_stalled_for_seconds: int = _seconds(300, "How long a pod may hold running or waiting requests while "
                                                    "generating no token: a healthy engine emits tokens every "
                                                    "scheduler step, so minutes of none is a hang.")
    engine_stalled_severity: str = _severity("critical", "Severity of a stalled engine: its requests hang.")
    queue_far_above_target_factor: float = _f(4.0, "times queue_target", "Waiting requests per pod, as a multiple "
                                              "of queue_target, that alert however flat the queue is: at 4x the "
                                              "HPA should have added replicas long ago.", _POSITIVE)
    queue_far_above_target_for_seconds: int = _seconds(900, "How long the queue may stay that far above target: "
                                                            "longer than a scale-up plus a model load.")
    queue_far_above_target_severity: str = _severity("warning", "Severity of a long queue far above target (the "
                                                                "SLO alerts page when users feel it).")
    model_down_for_seconds: int = _seconds(300, "How long every pod of a model may be unreadable: a rolling update "
                                                "keeps old pods serving, so all down for 5 minutes is an outage.")
    model_down_severity: str = _severity("critical", "Severity of a model with no replica serving.")
    exporter_no_targets_for_seconds: int = _seconds(600, "How long the exporters may be up with no vLLM target at "
                                                         "all (pod discovery broken: RBAC, a wrong label selector).")
    exporter_no_targets_severity: str = _severity("warning", "Severity of exporters watching no vLLM target.")
    request_errors_for_seconds: int = _seconds(300, "How long the error share must stay above its line.")
    request_errors_severity: str = _severity("critical", "Severity of request errors: clients get failures.")
    request_aborts_for_seconds: int = _seconds(600, "How long the abort share must stay above its line.")
    request_aborts_severity: str = _severity("warning", "Severity of a high abort share.")
    # Autoscaling and the adapter.
    hpa_replicas_mismatch_for_seconds: int = _seconds(900, "How long an HPA may want other replicas than it has "
                                                           "without the count moving (pods Pending for GPUs).")
    hpa_replicas_mismatch_severity: str = _severity("warning", "Severity of an HPA stuck short of its desired "
                                                               "replicas.")
    adapter_absent_severity: str = _severity("critical", "Severity of the adapter missing while an HPA reads a "
                                                         "kvscale metric (the alert is quiet when none does, e.g. "
                                                         "clusters that scale with KEDA's Prometheus trigger).")
    adapter_stale_seconds: int = _seconds(60, "Age of the adapter's source data above which its values are stale: "
                                              "the HPA syncs every 15 s, so a minute-old view is four missed syncs.")
    adapter_stale_for_seconds: int = _seconds(300, "How long the adapter's data may stay stale before alerting.")
    adapter_errors_for_seconds: int = _seconds(300, "How long the adapter's error share must stay above its line.")
    adapter_severity: str = _severity("warning", "Severity of a stale or failing adapter (the HPA holds its "
                                                 "replicas meanwhile).")
    # GPU health.
    gpu_temperature_alert: float = _f(85.0, "celsius", "GPU core temperature above which a GPU alerts: datacenter "
                                                       "GPUs start thermal slowdown in the high 80s.", _POSITIVE)
    gpu_temperature_for_seconds: int = _seconds(300, "How long a GPU must stay that hot.")
    gpu_ecc_window_seconds: int = _seconds(600, "An uncorrectable ECC error keeps its alert up this long, so it "
                                                "is seen and triaged.")
    gpu_throttle_reasons: str = _f("hw_slowdown|hw_thermal_slowdown|sw_thermal_slowdown|hw_power_brake_slowdown",
                                   "regex", "Clock-event reasons that alert (a regex on the reason label). "
                                   "sw_power_cap is left out: it holds at full load on a healthy GPU.", _URL)
    gpu_throttle_for_seconds: int = _seconds(600, "How long a GPU may be held down by those reasons.")
    gpu_health_severity: str = _severity("warning", "Severity of the GPU temperature, ECC and throttling alerts "
                                                    "(drain the node in working hours; GPU lost pages).")
    # Selectors and links (rules and dashboards).
    exporter_selector: str = _selector('job="kvscale-exporter"', "Matchers selecting the exporter's scrape job "
                                                                 "(kvscale_* series, absent/down).", required=True)
    adapter_selector: str = _selector('job="kvscale-adapter"', "Matchers selecting the custom-metrics adapter's "
                                                               "scrape job.", required=True)
    kube_state_metrics_selector: str = _selector('job="kube-state-metrics"', "Matchers selecting "
                                                 "kube-state-metrics (HPA, Deployment and pod-owner series).")
    hpa_namespace_selector: str = _selector("", "Matchers on the namespace of the HPAs the alerts watch, e.g. "
                                                'namespace=~"llm-.*"; empty: every namespace.')
    vllm_selector: str = _selector("", "Matchers for vLLM's own series; empty: the vllm: names identify them.")
    cluster_label: str = _f("cluster", "label name", "Label that tells clusters apart when one Prometheus or Grafana "
                            "serves several (an external label, as kubernetes-mixin's clusterLabel); kept in every "
                            "by and on of the rules and dashboards. Absent labels are harmless.", _LABEL_NAME)
    grafana_url_base: str = _f("http://localhost:3000", "URL", "Grafana the alerts' dashboard_url links open "
                               "(/d/<uid>?viewPanel=<id> is appended). The default suits kubectl port-forward; set "
                               "it to your Grafana's external URL.", _URL)
    runbook_url_base: str = _f("docs/runbooks.md", "URL", "Runbook document the alerts and dashboards link to "
                               "(#<alert name, lower case>). The default is the project's docs path; set it to "
                               "where your copy of docs/runbooks.md is served.", _URL)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            problem = _problem(_TYPES[f.name], f.metadata["bounds"], getattr(self, f.name))
            if problem:
                raise value_error("policy", f.name, problem)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def replace(self, data: dict[str, Any], origin: str) -> Policy:
        """This policy with the keys of ``data`` changed; unknown keys and bad values are PolicyErrors."""
        return from_mapping({**self.to_dict(), **_checked_keys(data, origin)}, origin)


_TYPES: dict[str, str] = {name: t.__name__ for name, t in typing.get_type_hints(Policy).items()}
_NAMES = tuple(f.name for f in dataclasses.fields(Policy))


_PLACEHOLDERS: ContextVar[bool] = ContextVar("kvscale_policy_placeholders", default=False)


@contextmanager
def placeholders() -> Iterator[None]:
    """Build sentinel policies whose strings stand for template expressions (the chart's generator).

    Inside, a string is not held to its ``enum`` or ``pattern`` (a severity sentinel is no
    severity); every other check stays. The chart's values schema checks the real values.
    """
    token = _PLACEHOLDERS.set(True)
    try:
        yield
    finally:
        _PLACEHOLDERS.reset(token)


def _problem(kind: str, bounds: dict[str, Any], value: Any) -> str | None:
    """Why ``value`` is not a valid value of a field, or None."""
    if kind == "str":
        if not isinstance(value, str):
            return f"expected a string, got {value!r}"
        if "\n" in value or "{" in value or "}" in value:
            return f"matchers go between {{}} in PromQL: no braces or newlines, got {value!r}"
        if bounds.get("minLength") and not value:
            return "must not be empty"
        if _PLACEHOLDERS.get():
            return None
        if "enum" in bounds and value not in bounds["enum"]:
            return f"must be one of {', '.join(bounds['enum'])}, got {value!r}"
        if "pattern" in bounds and not re.fullmatch(bounds["pattern"], value):
            return f"must match {bounds['pattern']}, got {value!r}"
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"expected a finite number, got {value!r}"
    if kind == "int" and value != int(value):
        return f"expected a whole number, got {value!r}"
    checks = (("exclusiveMinimum", value > bounds.get("exclusiveMinimum", -math.inf), "> "),
              ("minimum", value >= bounds.get("minimum", -math.inf), ">= "),
              ("maximum", value <= bounds.get("maximum", math.inf), "<= "),
              ("exclusiveMaximum", value < bounds.get("exclusiveMaximum", math.inf), "< "))
    broken = [f"{sign}{bounds[key]}" for key, ok, sign in checks if not ok]
    return f"must be {' and '.join(broken)}, got {value!r}" if broken else None


def value_error(origin: str, key: str, problem: str) -> PolicyError:
    """The one message for a bad value, whichever command reads the policy."""
    return PolicyError(f"{origin}: {key}: {problem}")


def _checked_keys(data: dict[str, Any], origin: str) -> dict[str, Any]:
    unknown = sorted(str(k) for k in data if k not in _TYPES)
    if unknown:
        hints = [f"{k!r}" + "".join(f" (did you mean {m!r}?)" for m in difflib.get_close_matches(k, _NAMES, 1))
                 for k in unknown]
        raise PolicyError(f"{origin}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(hints)}; "
                          "the policy keys are listed in docs/metrics.md#policy")
    return data


def from_mapping(data: dict[str, Any], origin: str = "policy") -> Policy:
    """A policy from a flat mapping of field names (YAML, Helm values); missing keys keep their default."""
    values: dict[str, Any] = {}
    for key, raw in _checked_keys(data, origin).items():
        kind = _TYPES[key]
        value = raw
        if kind == "int" and isinstance(raw, float) and raw.is_integer():
            value = int(raw)  # YAML 300.0 is 300 seconds
        elif kind == "float" and isinstance(raw, int) and not isinstance(raw, bool):
            value = float(raw)
        problem = _problem(kind, _BOUNDS[key], value)
        if problem:
            raise value_error(origin, key, problem)
        values[key] = value
    return Policy(**values)


_BOUNDS: dict[str, dict[str, Any]] = {f.name: f.metadata["bounds"] for f in dataclasses.fields(Policy)}


def describe() -> list[tuple[str, str, str, str]]:
    """(name, unit, default, doc) for every field, for generated docs and --help."""
    defaults = Policy()
    return [(f.name, f.metadata["unit"], repr(getattr(defaults, f.name)), f.metadata["doc"])
            for f in dataclasses.fields(Policy)]


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft-07, which Helm's values.schema.json understands) of a policy mapping."""
    defaults = Policy()
    properties: dict[str, Any] = {}
    for f in dataclasses.fields(Policy):
        properties[f.name] = {"type": _JSON_TYPES[_TYPES[f.name]], **f.metadata["bounds"],
                              "default": getattr(defaults, f.name),
                              "description": f"{f.metadata['doc']} Unit: {f.metadata['unit']}."}
    return {"$schema": "http://json-schema.org/draft-07/schema#", "title": "kvscale policy",
            "description": "Thresholds, SLOs, targets, alert durations and selectors; every key optional.",
            "type": "object", "additionalProperties": False, "properties": properties}


def read_yaml(path: Path) -> Any:
    """A YAML file's data (safe loader); ValueError with a one-line reason, never another exception."""
    try:
        text = path.read_bytes().decode("utf-8")
        return yaml.safe_load(text)
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 at byte {exc.start}") from exc
    except RecursionError as exc:  # PyYAML composes recursively: thousands of nested [ or {
        raise ValueError("nested too deeply") from exc
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(str(exc)) from exc


def read(path: Path, origin: str = "") -> dict[str, Any]:
    """The mapping in a policy YAML file: flat, or nested under a top-level ``policy:`` (so a Helm
    values excerpt works too); an empty file is an empty mapping. Keys are checked by the caller."""
    origin = origin or f"policy file {path}"
    try:
        data = read_yaml(path)
    except ValueError as exc:
        raise PolicyError(f"{origin}: cannot read: {exc}") from exc
    if isinstance(data, dict) and list(data) == ["policy"]:
        data = data["policy"]
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PolicyError(f"{origin}: the top level must be a mapping of policy keys")
    return data


def load(path: Path, origin: str = "") -> Policy:
    """The policy in a YAML file (see ``read``); keys it does not set keep their default."""
    origin = origin or f"policy file {path}"
    return from_mapping(read(path, origin), origin)


def locate(flag: str | Path | None, environ: Mapping[str, str] | None = None, *, prog: str = "",
           old_flag: tuple[str, str | Path | None] = ("", None), old_env: str = "") -> tuple[Path, str] | None:
    """Which policy file a command was given, and how to name it in errors: ``--policy``, else the
    command's deprecated flag, else KVSCALE_POLICY, else its deprecated variable (each with a warning)."""
    env = os.environ if environ is None else environ
    candidates = ((flag, ""), (old_flag[1], old_flag[0]), (env.get(ENV_NAME), ENV_NAME),
                  (env.get(old_env) if old_env else None, old_env))
    for value, via in candidates:
        if value:
            if via in (old_flag[0], old_env):
                print(f"{prog}: warning: {via} is deprecated; use --policy or {ENV_NAME}", file=sys.stderr)
            return Path(value), f"policy file {value}" + (f" (from {via})" if via else "")
    return None


def from_flag_or_env(flag: str | Path | None, environ: Mapping[str, str] | None = None, *, prog: str = "",
                     old_flag: tuple[str, str | Path | None] = ("", None), old_env: str = "") -> Policy:
    """The policy a command reads (see ``locate``); the defaults when it was given none."""
    found = locate(flag, environ, prog=prog, old_flag=old_flag, old_env=old_env)
    return load(*found) if found else Policy()
