"""KEDA's ScaledObject: its own 0 <-> 1 loop, and the HPA it creates for 1 <-> N.

What KEDA does (kedacore/keda v2.20, k8s-metrics-api.md §4.2, field-2026-12.md §4.2, §5):
- Every ``pollingInterval`` the operator asks each trigger whether it is active (value above
  ``activationThreshold``). Active at 0 replicas: KEDA itself scales to ``max(minReplicaCount, 1)``.
  Inactive with replicas and ``minReplicaCount`` 0: once ``cooldownPeriod`` has passed since the last
  active poll (or at once if it never was active), KEDA scales to 0.
- Above zero, the HPA ``keda-hpa-NAME`` scales: minReplicas ``max(minReplicaCount, 1)``, one External
  metric ``s{i}-{trigger}`` per trigger with an AverageValue target of the trigger's ``threshold``, so
  ``desired = ceil(value / threshold)``. Each HPA sync reads the trigger through KEDA's metrics server.
- A failed read counts a failure (a success resets it). Past ``fallback.failureThreshold`` failures
  KEDA answers ``fallback.replicas * threshold``, so the HPA lands on the fallback count
  (``currentReplicasIfHigher``/``IfLower`` compare it with the current count first). The scale loop
  also falls back at 0 replicas when every trigger fails; there (the HPA reads nothing at zero) the
  model counts one failure per poll against the same threshold.
- Negative values read as 0 (v2.20.2).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from simulator.autoscaling.hpa import HPA, Decision
from simulator.autoscaling.spec import Behavior, HPASpec, MetricTarget, PodState, SpecError

FallbackBehavior = Literal["static", "currentReplicasIfHigher", "currentReplicasIfLower"]
TriggerReader = Callable[["Trigger"], "float | None"]


@dataclass(frozen=True)
class Trigger:
    """A Prometheus-style trigger: one query (``metric`` with ``selector``, e.g. the sum of a
    Deployment's waiting requests) against ``threshold`` per replica."""

    metric: str
    threshold: float
    activation_threshold: float = 0.0
    selector: Mapping[str, str] = field(default_factory=dict)
    type: str = "prometheus"

    def __post_init__(self) -> None:
        if not self.threshold > 0:
            raise SpecError(f"trigger {self.metric}: threshold must be > 0")


@dataclass(frozen=True)
class Fallback:
    failure_threshold: int
    replicas: int
    behavior: FallbackBehavior = "static"

    def __post_init__(self) -> None:
        if self.failure_threshold < 0 or self.replicas < 0:
            raise SpecError("fallback: failureThreshold and replicas must be >= 0")


@dataclass(frozen=True)
class ScaledObjectSpec:
    triggers: Sequence[Trigger]
    min_replica_count: int = 0
    max_replica_count: int = 100
    polling_interval: float = 30.0
    cooldown_period: float = 300.0
    fallback: Fallback | None = None
    behavior: Behavior | None = None  # advanced.horizontalPodAutoscalerConfig.behavior
    hpa_sync_period: float = 15.0
    hpa_tolerance: float = 0.1

    def __post_init__(self) -> None:
        if not self.triggers:
            raise SpecError("a ScaledObject needs at least one trigger")
        if self.min_replica_count < 0 or self.max_replica_count < max(self.min_replica_count, 1):
            raise SpecError("need 0 <= minReplicaCount <= maxReplicaCount, maxReplicaCount >= 1")
        if self.polling_interval <= 0 or self.cooldown_period < 0:
            raise SpecError("pollingInterval must be > 0 and cooldownPeriod >= 0")

    def hpa_spec(self) -> HPASpec:
        metrics = [MetricTarget("External", metric_name(i, t), "AverageValue", t.threshold, t.selector)
                   for i, t in enumerate(self.triggers)]
        return HPASpec(max(self.min_replica_count, 1), self.max_replica_count, metrics, self.behavior,
                       tolerance=self.hpa_tolerance, sync_period=self.hpa_sync_period)


def metric_name(index: int, trigger: Trigger) -> str:
    return f"s{index}-{trigger.type}"


@dataclass(frozen=True)
class KedaDecision:
    desired: int
    reason: str
    active: bool
    fallback: bool = False
    hpa: Decision | None = None


class _ExternalMetrics:
    """KEDA's metrics server as the HPA sees it, with fallback counting on each read."""

    def __init__(self, owner: ScaledObject, read: TriggerReader, current: int) -> None:
        self._owner, self._read, self._current = owner, read, current

    def pods(self, metric: MetricTarget) -> Mapping[str, float]:
        return {}  # KEDA serves no Pods metrics

    def object(self, metric: MetricTarget) -> float | None:
        return None

    def external(self, metric: MetricTarget) -> float | None:
        return self._owner.served_value(metric.metric, self._read, self._current)


class ScaledObject:
    def __init__(self, spec: ScaledObjectSpec) -> None:
        self.spec = spec
        self.hpa = HPA(spec.hpa_spec())
        self.failures = 0
        self.last_active: float | None = None
        self.active = False
        self._last_poll: float | None = None
        self._by_name = {metric_name(i, t): t for i, t in enumerate(spec.triggers)}
        self.fallback_active = False

    def step(self, now: float, current_replicas: int, pods: Sequence[PodState], read: TriggerReader) -> KedaDecision:
        spec = self.spec
        if self._last_poll is None or now - self._last_poll >= spec.polling_interval - 1e-9:
            self._last_poll = now
            decided = self._poll(now, current_replicas, read)
            if decided is not None:
                return decided
        decision = self.hpa.reconcile(now, current_replicas, pods, _ExternalMetrics(self, read, current_replicas))
        reason = f"hpa: {decision.reason}" + (" (fallback)" if self.fallback_active else "")
        return KedaDecision(decision.desired, reason, self.active, self.fallback_active, decision)

    def _poll(self, now: float, current: int, read: TriggerReader) -> KedaDecision | None:
        spec = self.spec
        values = [read(t) for t in spec.triggers]
        self.active = any(v is not None and max(v, 0.0) > t.activation_threshold
                          for v, t in zip(values, spec.triggers, strict=True))
        every_trigger_failed = all(v is None for v in values)
        if self.active:
            self.last_active = now
            if current == 0:
                return KedaDecision(max(spec.min_replica_count, 1), "activated: scale from zero", True)
            return None
        fallback = spec.fallback
        if every_trigger_failed and current == 0 and fallback is not None and fallback.replicas != 0:
            # At zero the HPA reads nothing, so the scale loop counts the failures itself.
            self.failures += 1
            if self.failures > fallback.failure_threshold:
                self.fallback_active = True
                return KedaDecision(fallback.replicas, "fallback: every trigger failing", False, True)
            return None
        cooled = self.last_active is None or now - self.last_active >= spec.cooldown_period
        if current > 0 and spec.min_replica_count == 0 and not every_trigger_failed and cooled:
            return KedaDecision(0, "inactive past cooldownPeriod: scale to zero", False)
        return None

    def served_value(self, name: str, read: TriggerReader, current: int) -> float | None:
        """What KEDA's metrics server answers for ``s{i}-...``: the trigger's value or, past the
        failure threshold, the fallback replicas times the target."""
        trigger = self._by_name.get(name)
        if trigger is None:
            return None
        value = read(trigger)
        if value is not None:
            self.failures = 0
            self.fallback_active = False
            return max(value, 0.0)
        self.failures += 1
        fallback = self.spec.fallback
        if fallback is None or self.failures <= fallback.failure_threshold:
            return None
        self.fallback_active = True
        replicas = fallback.replicas
        if fallback.behavior == "currentReplicasIfHigher":
            replicas = max(replicas, current)
        elif fallback.behavior == "currentReplicasIfLower":
            replicas = min(replicas, current)
        return replicas * trigger.threshold
