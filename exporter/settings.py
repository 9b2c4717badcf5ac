"""The exporter's typed settings: one documented field each, from flags, env and YAML.

Precedence: built-in default < YAML file (``--config``) < environment variable
(``KVSCALE_<NAME>``) < command-line flag. Every value is validated before the
exporter binds its port; an unknown YAML key or a bad value is a
:class:`SettingsError` naming the field and where the value came from.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from exporter.contract.policy import Thresholds, ThresholdsError, from_mapping


class SettingsError(ValueError):
    """Invalid configuration; the message says which setting, from where, and why."""


def _f(default: Any, doc: str, *, metavar: str = "", repeat: bool = False) -> Any:
    meta = {"doc": doc, "metavar": metavar, "repeat": repeat}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    listen: str = _f("0.0.0.0:9400", "Address to serve /metrics, /healthz, /readyz on.", metavar="HOST:PORT")
    vllm_target: list[str] = _f([], "Static vLLM target, repeatable; disables Kubernetes discovery. The name "
                                    "defaults to the URL's host:port.", metavar="[NAMESPACE/POD=]URL", repeat=True)
    kubernetes: str = _f("auto", "Discover vLLM pods on this node through the Kubernetes API: on, off, or auto "
                                 "(on when running in a cluster and no static target is given).", metavar="MODE")
    node_name: str = _f("", "This node's name (from the downward API: spec.nodeName). Required for discovery.",
                        metavar="NAME")
    pod_selector: str = _f("kvscale.io/scrape=true", "Label selector of the vLLM pods to scrape.",
                           metavar="SELECTOR")
    pod_port: int = _f(8000, "vLLM port when the pod has no kvscale.io/port annotation.", metavar="PORT")
    pod_path: str = _f("/metrics", "Metrics path when the pod has no kvscale.io/path annotation.", metavar="PATH")
    interval: float = _f(1.0, "Seconds between collections; /metrics serves the latest one. Short, so the HPA "
                              "sees a queue spike within seconds.", metavar="SECONDS")
    window: float = _f(60.0, "Sliding window for quantiles and rates.", metavar="SECONDS")
    scrape_timeout: float = _f(0.8, "Deadline of one target's scrape; must be below --interval.",
                               metavar="SECONDS")
    max_body_bytes: int = _f(16 * 1024 * 1024, "Largest /metrics body read from a target.", metavar="BYTES")
    quantiles: list[float] = _f([0.5, 0.9, 0.95, 0.99], "Quantiles of the latency families, repeatable.",
                                metavar="Q", repeat=True)
    gpu_price_per_hour: float = _f(0.0, "Price of one GPU per hour in dollars; 0 disables the cost metric.",
                                   metavar="DOLLARS")
    gpus_per_pod: float = _f(1.0, "GPUs per vLLM pod when neither attribution nor the pod spec says.",
                             metavar="N")
    nvml: str = _f("auto", "GPU metrics through NVML: on, off, or auto (on when libnvidia-ml is present).",
                   metavar="MODE")
    nvml_library: str = _f("", "Path of libnvidia-ml.so.1 when the driver is mounted outside the loader path.",
                           metavar="PATH")
    pod_resources_socket: str = _f("/var/lib/kubelet/pod-resources/kubelet.sock",
                                   "kubelet pod-resources socket for GPU-to-pod attribution.", metavar="PATH")
    log_level: str = _f("info", "Log level: debug, info, warning, error.", metavar="LEVEL")
    thresholds: Thresholds = field(default_factory=Thresholds, metadata={
        "doc": "Policy thresholds (YAML key 'thresholds'; saturation uses kv_target, queue_target, "
               "ttft_p95_slo_seconds).", "metavar": "", "repeat": False})

    def __post_init__(self) -> None:
        _check(self)


_CHOICES = {"kubernetes": ("auto", "on", "off"), "nvml": ("auto", "on", "off"),
            "log_level": ("debug", "info", "warning", "error")}


def _check(s: Settings) -> None:
    for name, choices in _CHOICES.items():
        if getattr(s, name) not in choices:
            raise SettingsError(f"{name}: {getattr(s, name)!r} is not one of {', '.join(choices)}")
    host, sep, port = s.listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise SettingsError(f"listen: {s.listen!r} is not HOST:PORT")
    for name in ("interval", "window", "scrape_timeout", "gpus_per_pod"):
        value = getattr(s, name)
        if not math.isfinite(value) or value <= 0:
            raise SettingsError(f"{name}: must be a positive number, got {value!r}")
    if s.scrape_timeout >= s.interval:
        raise SettingsError(f"scrape_timeout ({s.scrape_timeout}s) must be below interval ({s.interval}s)")
    if s.window < 2 * s.interval:
        raise SettingsError(f"window ({s.window}s) must cover at least two intervals ({s.interval}s)")
    if not math.isfinite(s.gpu_price_per_hour) or s.gpu_price_per_hour < 0:
        raise SettingsError(f"gpu_price_per_hour: must be >= 0, got {s.gpu_price_per_hour!r}")
    if s.max_body_bytes < 1024:
        raise SettingsError(f"max_body_bytes: must be at least 1024, got {s.max_body_bytes}")
    if not 0 < s.pod_port < 65536:
        raise SettingsError(f"pod_port: {s.pod_port} is not a port")
    if not s.quantiles or any(not 0 < q < 1 for q in s.quantiles):
        raise SettingsError(f"quantiles: each must be in (0, 1), got {s.quantiles!r}")


FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def coerce(name: str, raw: Any, origin: str) -> Any:
    """Turn a raw value (YAML scalar, env string, flag string) into the field's type."""
    kind = FIELDS[name].type
    try:
        if name == "thresholds":
            if not isinstance(raw, dict):
                raise SettingsError(f"thresholds ({origin}): expected a mapping")
            return from_mapping(raw)
        if kind.startswith("list["):
            items = raw if isinstance(raw, list) else [x for x in str(raw).replace(",", " ").split() if x]
            item_type = float if "float" in kind else str
            return [item_type(x) for x in items]
        if kind == "int":
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(raw)
        if kind == "float":
            if isinstance(raw, bool):
                raise ValueError(raw)
            return float(raw)
        if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
            raise ValueError(raw)
        return str(raw)
    except (ThresholdsError, TypeError, ValueError) as exc:
        raise SettingsError(f"{name} ({origin}): invalid value {raw!r}: {exc}") from exc


def build(layers: list[tuple[str, dict[str, Any]]]) -> Settings:
    """Settings from (origin, values) layers, later layers winning; unknown keys are errors."""
    values: dict[str, Any] = {}
    for origin, layer in layers:
        for key, raw in layer.items():
            name = key.replace("-", "_")
            if name not in FIELDS:
                raise SettingsError(f"unknown setting {key!r} in {origin} (known: {', '.join(sorted(FIELDS))})")
            values[name] = coerce(name, raw, origin)
    try:
        return Settings(**values)
    except ThresholdsError as exc:
        raise SettingsError(str(exc)) from exc
