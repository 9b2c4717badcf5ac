"""The exporter's typed settings: one documented field each, from flags, env and YAML.

Read through the one settings pattern (``exporter.contract.settings``): precedence
built-in default < YAML file (``--config``) < environment variable (``KVSCALE_<NAME>``) <
command-line flag, plus the policy (``--policy`` / ``KVSCALE_POLICY``). Every value is
validated before the exporter binds its port; an unknown key or a bad value is a
:class:`SettingsError` naming the field and where the value came from.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from exporter.contract.policy import Policy
from exporter.contract.settings import Command, SettingsError, convert, load, policy_field
from exporter.contract.settings import setting as _setting

__all__ = ["COMMAND", "Settings", "SettingsError", "build", "load_settings"]


def _f(default: Any, doc: str, *, metavar: str = "", repeat: bool = False) -> Any:
    # Lists also come as one string split on commas or spaces (KVSCALE_QUANTILES="0.9, 0.95").
    return _setting(default, doc, metavar=metavar, repeat=repeat, separator=r"[\s,]+")


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
    window_min_ratio: float = _f(0.2, "Quantiles, rates, hit ratio and cost are absent until a target's readings "
                                      "span this fraction of --window (12 s of 60 s) after the exporter starts or "
                                      "the target appears, rather than computed over two samples a second apart.",
                                 metavar="RATIO")
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
    dra: str = _f("auto", "GPU attribution of Dynamic Resource Allocation claims through this node's ResourceSlices "
                          "(needs RBAC to list/watch resourceslices and pods): on, off, or auto (on in a cluster).",
                  metavar="MODE")
    log_level: str = _f("info", "Log level: debug, info, warning, error.", metavar="LEVEL")
    max_models_per_target: int = _f(10, "Most model_name values one target may report; past it the target is "
                                        "down with reason 'limit'.", metavar="N")
    max_engines_per_target: int = _f(256, "Most engines (model, engine pairs) one target may report; past it the "
                                          "target is down with reason 'limit'.", metavar="N")
    max_series_per_target: int = _f(50_000, "Most counter series and histogram buckets kept per target (about 150 "
                                            "per engine); past it the target is down with reason 'limit'.",
                                    metavar="N")
    max_label_value_bytes: int = _f(512, "Longest label value (model_name, engine) a target may report, in bytes; "
                                         "past it the target is down with reason 'limit'.", metavar="BYTES")
    http_max_connections: int = _f(256, "Most open connections to this exporter's HTTP server; at the limit a new "
                                        "connection displaces the longest-idle one, or is closed if all are busy.",
                                   metavar="N")
    http_idle_timeout: float = _f(15.0, "Seconds a connection may stay without a complete request (idle keep-alive, "
                                        "or request headers still arriving) before it is closed.", metavar="SECONDS")
    # Saturation reads kv_target, queue_target and ttft_p95_slo_seconds.
    policy: Policy = policy_field()

    def __post_init__(self) -> None:
        _check(self)


_CHOICES = {"kubernetes": ("auto", "on", "off"), "nvml": ("auto", "on", "off"), "dra": ("auto", "on", "off"),
            "log_level": ("debug", "info", "warning", "error")}


def _check(s: Settings) -> None:
    for name, choices in _CHOICES.items():
        if getattr(s, name) not in choices:
            raise SettingsError(f"{name}: {getattr(s, name)!r} is not one of {', '.join(choices)}", field=name)
    host, sep, port = s.listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise SettingsError(f"listen: {s.listen!r} is not HOST:PORT", field="listen")
    if not 0 <= s.window_min_ratio <= 1:
        raise SettingsError(f"window_min_ratio: must be in [0, 1], got {s.window_min_ratio!r}",
                            field="window_min_ratio")
    for name in ("interval", "window", "scrape_timeout", "gpus_per_pod", "http_idle_timeout"):
        value = getattr(s, name)
        if not math.isfinite(value) or value <= 0:
            raise SettingsError(f"{name}: must be a positive number, got {value!r}", field=name)
    if s.scrape_timeout >= s.interval:
        raise SettingsError(f"scrape_timeout ({s.scrape_timeout}s) must be below interval ({s.interval}s)",
                            field="scrape_timeout")
    if s.window < 2 * s.interval:
        raise SettingsError(f"window ({s.window}s) must cover at least two intervals ({s.interval}s)",
                            field="window")
    if not math.isfinite(s.gpu_price_per_hour) or s.gpu_price_per_hour < 0:
        raise SettingsError(f"gpu_price_per_hour: must be >= 0, got {s.gpu_price_per_hour!r}",
                            field="gpu_price_per_hour")
    if s.max_body_bytes < 1024:
        raise SettingsError(f"max_body_bytes: must be at least 1024, got {s.max_body_bytes}", field="max_body_bytes")
    if not 0 < s.pod_port < 65536:
        raise SettingsError(f"pod_port: {s.pod_port} is not a port", field="pod_port")
    for name in ("max_models_per_target", "max_engines_per_target", "max_series_per_target",
                 "max_label_value_bytes", "http_max_connections"):
        if getattr(s, name) < 1:
            raise SettingsError(f"{name}: must be at least 1, got {getattr(s, name)}", field=name)
    if not s.quantiles or any(not 0 < q < 1 for q in s.quantiles):
        raise SettingsError(f"quantiles: each must be in (0, 1), got {s.quantiles!r}", field="quantiles")


COMMAND = Command(
    prog="kvscale-exporter", env_prefix="KVSCALE_", settings=Settings,
    description="Per-node exporter: scrapes the vLLM engines (and GPUs) on this node and serves kvscale_* "
                "scaling signals on /metrics.",
    env_aliases={"NODE_NAME": "node_name"},  # the downward API's usual spelling, below KVSCALE_NODE_NAME
    deprecated_policy=("--thresholds-file", "KVSCALE_THRESHOLDS_FILE"),
    policy_keys=("policy", "thresholds"))  # 'thresholds:' is the older spelling of the --config key
FIELDS = COMMAND.fields()


def load_settings(argv: Sequence[str] | None, environ: Mapping[str, str]) -> Settings:
    """Settings from argv, environment and files; SettingsError if invalid."""
    return load(COMMAND, argv, environ)


def build(layers: list[tuple[str, dict[str, Any]]]) -> Settings:
    """Settings from in-process (origin, values) layers, later winning (the demo, tests, benches)."""
    hints = typing.get_type_hints(Settings)
    values: dict[str, Any] = {}
    policy = Policy()
    for origin, layer in layers:
        for key, raw in layer.items():
            name = key.replace("-", "_")
            if name == "policy":
                policy = raw if isinstance(raw, Policy) else policy.replace(raw, origin)
                continue
            if name not in FIELDS:
                raise SettingsError(f"unknown setting {key!r} in {origin}")
            try:
                values[name] = convert(hints[name], raw, FIELDS[name].metadata["separator"])
            except (TypeError, ValueError) as exc:
                raise SettingsError(f"{name} ({origin}): invalid value {raw!r}: {exc}", field=name) from exc
    return Settings(**values, policy=policy)
