"""Autoscaler models: the HorizontalPodAutoscaler controller and KEDA's ScaledObject, pure and
deterministic given ``now``, with metrics sources for unit tests and for the real adapter."""

from simulator.autoscaling.hpa import HPA, Decision, MetricProposal
from simulator.autoscaling.spec import (
    Behavior,
    HPASpec,
    MetricsSource,
    MetricTarget,
    PodState,
    ScalingPolicy,
    ScalingRules,
    StaticSource,
)

__all__ = [
    "HPA",
    "Behavior",
    "Decision",
    "HPASpec",
    "MetricProposal",
    "MetricTarget",
    "MetricsSource",
    "PodState",
    "ScalingPolicy",
    "ScalingRules",
    "StaticSource",
]
