"""What an HPA is asked to do: the autoscaling/v2 spec, pod states, and where metrics come from.

Names and defaults follow ``autoscaling/v2`` and kube-controller-manager (k8s-metrics-api.md §2):
sync period 15 s, tolerance 0.1, scale-down stabilization 300 s. ``behavior`` left ``None`` means the
controller's legacy path (300 s max-window, scale-up cap ``max(2*current, 4)``); a ``Behavior``
gets the API defaults for whichever direction it leaves out, as the API server fills them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from exporter.contract.catalog import family

MetricType = Literal["Pods", "Object", "External"]
TargetType = Literal["AverageValue", "Value"]
PodPhase = Literal["Pending", "Running", "Succeeded", "Failed"]
PolicyType = Literal["Pods", "Percent"]
SelectPolicy = Literal["Max", "Min", "Disabled"]

MAX_PERIOD_SECONDS = 1800  # autoscaling/v2 validation: periodSeconds in (0, 1800]


class SpecError(ValueError):
    """An HPA or ScaledObject spec the API server would reject."""


@dataclass(frozen=True)
class MetricTarget:
    """One entry of ``spec.metrics``. ``metric`` is a catalog family (or, for External, any name
    the external provider serves, e.g. KEDA's ``s0-prometheus``); ``selector`` is the metric
    selector (``metricLabelSelector``), e.g. ``{"quantile": "0.95"}``."""

    type: MetricType
    metric: str
    target_type: TargetType
    target: float
    selector: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type not in ("Pods", "Object", "External"):
            raise SpecError(f"metric type {self.type!r}: expected Pods, Object or External")
        if self.target_type not in ("AverageValue", "Value"):
            raise SpecError(f"{self.metric}: target type {self.target_type!r}: expected AverageValue or Value")
        if self.type == "Pods" and self.target_type != "AverageValue":
            raise SpecError(f"{self.metric}: a Pods metric takes only an AverageValue target")
        if not self.target > 0:
            raise SpecError(f"{self.metric}: target must be > 0, got {self.target!r}")
        if self.type != "External":
            try:
                family(self.metric)
            except KeyError as exc:
                raise SpecError(f"{self.metric!r} is not a catalog family") from exc

    @property
    def key(self) -> str:
        labels = ",".join(f"{k}={v}" for k, v in sorted(self.selector.items()))
        return f"{self.type}/{self.metric}" + (f"{{{labels}}}" if labels else "")


@dataclass(frozen=True)
class ScalingPolicy:
    type: PolicyType
    value: int
    period_seconds: float

    def __post_init__(self) -> None:
        if self.type not in ("Pods", "Percent") or self.value <= 0:
            raise SpecError(f"scaling policy {self.type} {self.value}: type Pods|Percent, value > 0")
        if not 0 < self.period_seconds <= MAX_PERIOD_SECONDS:
            raise SpecError(f"periodSeconds {self.period_seconds}: must be in (0, {MAX_PERIOD_SECONDS}]")


@dataclass(frozen=True)
class ScalingRules:
    """``behavior.scaleUp`` / ``scaleDown``. ``stabilization_window_seconds=None`` takes the
    direction's default (0 up, 300 down); ``tolerance=None`` takes the HPA's global tolerance
    (per-direction tolerance: KEP-4951, beta in Kubernetes 1.35)."""

    policies: tuple[ScalingPolicy, ...]
    select_policy: SelectPolicy = "Max"
    stabilization_window_seconds: float | None = None
    tolerance: float | None = None

    def __post_init__(self) -> None:
        if self.select_policy not in ("Max", "Min", "Disabled"):
            raise SpecError(f"selectPolicy {self.select_policy!r}: expected Max, Min or Disabled")
        if self.tolerance is not None and self.tolerance < 0:
            raise SpecError(f"tolerance {self.tolerance}: must be >= 0")


# API defaults (pkg/apis/autoscaling/v2/defaults.go), applied only when behavior is set.
DEFAULT_SCALE_UP = ScalingRules((ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15)), "Max", 0)
DEFAULT_SCALE_DOWN = ScalingRules((ScalingPolicy("Percent", 100, 15),), "Max", None)


@dataclass(frozen=True)
class Behavior:
    scale_up: ScalingRules = DEFAULT_SCALE_UP
    scale_down: ScalingRules = DEFAULT_SCALE_DOWN


@dataclass(frozen=True)
class HPASpec:
    min_replicas: int
    max_replicas: int
    metrics: Sequence[MetricTarget]
    behavior: Behavior | None = None
    tolerance: float = 0.1
    sync_period: float = 15.0
    downscale_stabilization: float = 300.0  # --horizontal-pod-autoscaler-downscale-stabilization

    def __post_init__(self) -> None:
        if self.min_replicas < 0 or self.max_replicas < max(self.min_replicas, 1):
            raise SpecError(f"replicas [{self.min_replicas}, {self.max_replicas}]: need 0 <= min <= max, max >= 1")
        if not self.metrics:
            raise SpecError("an HPA needs at least one metric")
        if self.min_replicas == 0 and any(m.type == "Pods" for m in self.metrics):
            raise SpecError("minReplicas 0 (HPAScaleToZero) needs Object or External metrics only")
        if self.tolerance < 0 or self.sync_period <= 0:
            raise SpecError("tolerance must be >= 0 and the sync period > 0")


@dataclass(frozen=True)
class PodState:
    """A pod the scale selector matches. For custom metrics the controller sets aside Pending pods
    (unready) and deleting or Failed pods (ignored); the Ready condition counts only for CPU and for
    the ready-pod count of Object/External ``Value`` targets (Running and Ready)."""

    name: str
    ready: bool = True
    phase: PodPhase = "Running"
    deleting: bool = False


class MetricsSource(Protocol):
    """What the metrics client answers. An empty mapping or ``None`` is a failed fetch (the
    controller treats 0 items as an error), never 0."""

    def pods(self, metric: MetricTarget) -> Mapping[str, float]: ...

    def object(self, metric: MetricTarget) -> float | None: ...

    def external(self, metric: MetricTarget) -> float | None: ...


@dataclass
class StaticSource:
    """An in-process source: per-pod values by metric name, and Object/External values."""

    pod_values: dict[str, dict[str, float]] = field(default_factory=dict)
    object_values: dict[str, float] = field(default_factory=dict)
    external_values: dict[str, float] = field(default_factory=dict)

    def pods(self, metric: MetricTarget) -> Mapping[str, float]:
        return self.pod_values.get(metric.metric, {})

    def object(self, metric: MetricTarget) -> float | None:
        return self.object_values.get(metric.metric)

    def external(self, metric: MetricTarget) -> float | None:
        return self.external_values.get(metric.metric)
