"""The HorizontalPodAutoscaler controller, one HPA: ``reconcile`` is one sync of ``reconcileAutoscaler``.

Per metric a proposal (``replicas.py``), the max over metrics, then normalization (``behavior.py``).
A metric that fails is skipped; if every metric failed, or some failed and the rest would scale
down, the controller holds (``ScalingActive=False``). Current replicas outside [min, max] are
clamped without reading metrics; current 0 with minReplicas > 0 means scaling is disabled.
Deterministic: all time comes from ``now``; call it every sync, or whenever, and it acts only
when a sync period has passed since its last sync.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from simulator.autoscaling.behavior import History, Normalized, legacy, with_behavior
from simulator.autoscaling.replicas import (
    MetricFetchError,
    Proposal,
    Tolerances,
    average_value_metric,
    pods_metric,
    value_metric,
)
from simulator.autoscaling.spec import HPASpec, MetricsSource, MetricTarget, PodState


@dataclass(frozen=True)
class MetricProposal:
    """One metric's outcome: ``replicas`` is ``None`` when the metric failed (``error`` says why)."""

    metric: MetricTarget
    replicas: int | None
    usage: float | None  # what the controller shows in status: average per pod, or the value
    error: str = ""


@dataclass(frozen=True)
class Decision:
    desired: int
    proposals: tuple[MetricProposal, ...]
    reason: str
    synced: bool = True
    recommendation: int | None = None  # max over metrics, before stabilization and policies

    @property
    def scaled(self) -> bool:
        return self.synced and self.reason.startswith(("scale up", "scale down", "clamp"))


class HPA:
    def __init__(self, spec: HPASpec) -> None:
        self.spec = spec
        self._history = History()
        self._last_sync: float | None = None
        up = spec.behavior.scale_up.tolerance if spec.behavior else None
        down = spec.behavior.scale_down.tolerance if spec.behavior else None
        self.tolerances = Tolerances(down=spec.tolerance if down is None else down,
                                     up=spec.tolerance if up is None else up)

    def due(self, now: float) -> bool:
        return self._last_sync is None or now - self._last_sync >= self.spec.sync_period - 1e-9

    def reconcile(self, now: float, current_replicas: int, pods: Sequence[PodState],
                  source: MetricsSource) -> Decision:
        if not self.due(now):
            return Decision(current_replicas, (), "waiting for the next sync", synced=False)
        self._last_sync = now
        self._history.prune(now, self._memory_seconds())
        spec = self.spec
        if current_replicas == 0 and spec.min_replicas != 0:
            return Decision(0, (), "scaling is disabled since the replica count of the target is zero")
        if current_replicas > spec.max_replicas:
            return self._scaled(now, current_replicas, spec.max_replicas, (), "clamp: current above maxReplicas")
        if current_replicas < spec.min_replicas:
            return self._scaled(now, current_replicas, spec.min_replicas, (), "clamp: current below minReplicas")
        proposals = tuple(self._propose(m, current_replicas, pods, source) for m in spec.metrics)
        valid = [p for p in proposals if p.replicas is not None]
        recommendation = max((p.replicas for p in valid if p.replicas is not None), default=0)
        if not valid or (len(valid) < len(proposals) and recommendation < current_replicas):
            failed = next(p for p in proposals if p.replicas is None)
            return Decision(current_replicas, proposals, f"hold: failed to get {failed.metric.key}: {failed.error}")
        normalized = self._normalize(now, current_replicas, recommendation)
        if normalized.replicas > current_replicas:
            top = max(valid, key=lambda p: p.replicas or 0)
            why = f"scale up: {top.metric.key} above target ({normalized.reason})"
        elif normalized.replicas < current_replicas:
            why = f"scale down: all metrics below target ({normalized.reason})"
        else:
            why = f"hold: {normalized.reason}"
        return self._scaled(now, current_replicas, normalized.replicas, proposals, why,
                            recommendation=recommendation)

    def _scaled(self, now: float, current: int, desired: int, proposals: tuple[MetricProposal, ...], why: str,
                *, recommendation: int | None = None) -> Decision:
        if self.spec.behavior is not None:
            self._history.record_scale(now, current, desired)
        return Decision(desired, proposals, why, recommendation=recommendation)

    def _normalize(self, now: float, current: int, desired: int) -> Normalized:
        spec = self.spec
        if spec.behavior is None:
            return legacy(self._history, now, current, desired, min_replicas=spec.min_replicas,
                          max_replicas=spec.max_replicas, window=spec.downscale_stabilization)
        return with_behavior(self._history, now, current, desired, min_replicas=spec.min_replicas,
                             max_replicas=spec.max_replicas, behavior=spec.behavior,
                             default_down_window=spec.downscale_stabilization)

    def _propose(self, metric: MetricTarget, current: int, pods: Sequence[PodState],
                 source: MetricsSource) -> MetricProposal:
        try:
            proposal = self._compute(metric, current, pods, source)
        except MetricFetchError as exc:
            return MetricProposal(metric, None, None, str(exc))
        return MetricProposal(metric, proposal.replicas, proposal.usage_milli / 1000)

    def _compute(self, metric: MetricTarget, current: int, pods: Sequence[PodState],
                 source: MetricsSource) -> Proposal:
        tol = self.tolerances
        if metric.type == "Pods":
            samples = source.pods(metric)
            if not samples:
                raise MetricFetchError("no metrics returned from custom metrics API")
            return pods_metric(current, pods, samples, metric.target, tol)
        value = source.object(metric) if metric.type == "Object" else source.external(metric)
        if value is None:
            raise MetricFetchError(f"unable to get {metric.type.lower()} metric {metric.metric}")
        if metric.target_type == "Value":
            return value_metric(current, pods, value, metric.target, tol)
        return average_value_metric(current, value, metric.target, tol)

    def _memory_seconds(self) -> float:
        windows = [self.spec.downscale_stabilization]
        if self.spec.behavior is not None:
            for rules in (self.spec.behavior.scale_up, self.spec.behavior.scale_down):
                windows.append(rules.stabilization_window_seconds or 0.0)
                windows.extend(p.period_seconds for p in rules.policies)
        return max(windows) + 1.0
