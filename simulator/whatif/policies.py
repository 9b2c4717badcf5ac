"""Scaling policies to compare: what a team would deploy, as HPA or KEDA specs, with their targets.

Targets come from the policy (``exporter.contract.policy.Policy``) unless a variant
overrides them: GPU utilization 0.75 (what most guides still show), waiting requests 5
per pod, KV usage 0.75, TTFT p95 at the SLO, kvscale's saturation at 1.0, KEDA on the
summed queue, and the trap: KEDA's AverageValue on an intensive quantity (max saturation,
llm-d's saturation overlay), where ``desired = ceil(value / target)`` whatever the pool size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from exporter.contract.policy import Policy
from simulator.autoscaling.hpa import HPA
from simulator.autoscaling.keda import ScaledObject, ScaledObjectSpec, Trigger
from simulator.autoscaling.spec import HPASpec, MetricTarget, PodState
from simulator.whatif.signals import GPU_UTIL, KV_USAGE, SATURATION, TTFT, WAITING, FleetSignals


class Autoscaler(Protocol):
    def decide(self, now: float, current: int, pods: Sequence[PodState], signals: FleetSignals) -> int | None:
        """Desired replicas at this sync, or None when the controller did not sync."""
        ...


@dataclass
class HPAScaler:
    hpa: HPA

    def decide(self, now: float, current: int, pods: Sequence[PodState], signals: FleetSignals) -> int | None:
        decision = self.hpa.reconcile(now, current, pods, signals)
        return decision.desired if decision.synced else None


@dataclass
class KedaScaler:
    scaled_object: ScaledObject
    clamp: float | None = None

    def decide(self, now: float, current: int, pods: Sequence[PodState], signals: FleetSignals) -> int | None:
        def read(trigger: Trigger) -> float | None:
            value = signals.trigger(trigger)
            return value if value is None or self.clamp is None else min(value, self.clamp)

        return self.scaled_object.step(now, current, pods, read).desired


@dataclass(frozen=True)
class Candidate:
    """One policy under test: a name for the table, what it scales on, and how to build it."""

    name: str
    kind: str  # "hpa" or "keda"
    metric: str
    target: float
    selector: tuple[tuple[str, str], ...] = ()
    stabilization_seconds: float | None = None
    clamp: float | None = None  # the query clamps the signal (llm-d's recording rules: at 2)
    description: str = ""

    def build(self, policy: Policy, min_replicas: int, max_replicas: int) -> Autoscaler:
        window = float(policy.scale_down_stabilization_seconds if self.stabilization_seconds is None
                       else self.stabilization_seconds)
        if self.kind == "keda":
            trigger = Trigger(self.metric, self.target, selector=dict(self.selector))
            spec = ScaledObjectSpec((trigger,), min_replica_count=min_replicas, max_replica_count=max_replicas,
                                    cooldown_period=window)
            spec = replace(spec, hpa_sync_period=15.0)
            return KedaScaler(ScaledObject(spec), self.clamp)
        metric = MetricTarget("Pods", self.metric, "AverageValue", self.target, dict(self.selector))
        return HPAScaler(HPA(HPASpec(min_replicas, max_replicas, (metric,), downscale_stabilization=window)))

    def with_target(self, target: float) -> Candidate:
        return replace(self, name=f"{self.name.split('@')[0]}@{target:g}", target=target)

    def with_stabilization(self, seconds: float) -> Candidate:
        return replace(self, name=f"{self.name}/stab{seconds:g}s", stabilization_seconds=seconds)


def candidates(policy: Policy) -> dict[str, Candidate]:
    """The built-in policies, targets from ``policy``."""
    p95 = (("quantile", "0.95"),)
    built = [
        Candidate("gpu-util", "hpa", GPU_UTIL, policy.gpu_utilization_target,
                  description="HPA, Pods kvscale_gpu_utilization_ratio AverageValue (the common guide)"),
        Candidate("queue", "hpa", WAITING, policy.queue_target,
                  description="HPA, Pods kvscale_vllm_requests_waiting AverageValue"),
        Candidate("kv-usage", "hpa", KV_USAGE, policy.kv_target,
                  description="HPA, Pods kvscale_vllm_kv_cache_usage_ratio AverageValue"),
        Candidate("ttft-p95", "hpa", TTFT, policy.ttft_p95_slo_seconds, p95,
                  description="HPA, Pods kvscale_vllm_ttft_seconds{quantile=0.95} AverageValue = the SLO"),
        Candidate("saturation", "hpa", SATURATION, 1.0,
                  description="HPA, Pods kvscale_vllm_saturation_ratio AverageValue 1 (kvscale)"),
        Candidate("keda-queue", "keda", WAITING, policy.queue_target,
                  description="KEDA, sum of waiting requests, threshold per replica"),
        Candidate("keda-sat-trap", "keda", SATURATION, 0.7, clamp=2.0,
                  description="KEDA, max saturation clamped at 2, AverageValue 0.7 (llm-d's overlay): the "
                              "intensive-quantity trap, never above ceil(2/0.7) = 3 replicas"),
    ]
    return {c.name: c for c in built}


def parse_sweep(text: str, known: dict[str, Candidate]) -> list[Candidate]:
    """``queue=1,2,5,10``: one variant of a built-in policy per target value."""
    name, _, values = text.partition("=")
    if name not in known or not values:
        raise ValueError(f"sweep {text!r}: expected POLICY=V1,V2,... with POLICY one of {', '.join(known)}")
    try:
        targets = [float(v) for v in values.split(",")]
    except ValueError as exc:
        raise ValueError(f"sweep {text!r}: targets must be numbers") from exc
    if any(not t > 0 for t in targets):
        raise ValueError(f"sweep {text!r}: targets must be > 0")
    return [known[name].with_target(t) for t in targets]

