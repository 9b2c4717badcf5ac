"""The replica calculator: one metric's proposal, as kube-controller-manager computes it.

A transcription of ``replica_calculator.go`` (k8s-metrics-api.md §2) for custom metrics. Values are
compared in milli-units (``MilliValue()`` is ``ceil(q*1000)``) and the average over pods uses
integer division, as the controller does, so edge cases round the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from simulator.autoscaling.spec import PodState


class MetricFetchError(Exception):
    """The controller could not compute a proposal from this metric (it then holds, or keeps scaling up)."""


@dataclass(frozen=True)
class Tolerances:
    """``isWithin(r) = 1 - down ≤ r ≤ 1 + up``."""

    down: float
    up: float

    def within(self, ratio: float) -> bool:
        return (1.0 - self.down) <= ratio <= (1.0 + self.up)


@dataclass(frozen=True)
class Proposal:
    replicas: int
    usage_milli: int  # current average (Pods, AverageValue) or value (Value), in milli-units


def milli(value: float) -> int:
    """``MilliValue()``: ceil(value * 1000), on the value's shortest decimal form."""
    if math.isnan(value) or math.isinf(value):
        raise MetricFetchError(f"{value!r} is not a quantity")
    return math.ceil(Decimal(repr(float(value))) * 1000)


def _ratio(usage: int, target: int) -> tuple[float, int]:
    return usage / target, usage


def _average(values: Mapping[str, int]) -> int:
    return sum(values.values()) // len(values)  # Go integer division on int64 milli-values


def pods_metric(current: int, pods: Sequence[PodState], samples: Mapping[str, float], target: float,
                tol: Tolerances) -> Proposal:
    """``calcPlainMetricReplicas``: a Pods metric with an AverageValue target."""
    if not pods:
        raise MetricFetchError("no pods returned by selector while calculating replica count")
    target_m = milli(target)
    ready: dict[str, int] = {}
    unready: list[str] = []
    missing: list[str] = []
    for pod in pods:
        if pod.deleting or pod.phase in ("Failed", "Succeeded"):
            continue  # ignored
        if pod.phase == "Pending":
            unready.append(pod.name)
        elif pod.name not in samples:
            missing.append(pod.name)
        else:
            ready[pod.name] = milli(samples[pod.name])
    if not ready:
        raise MetricFetchError("did not receive metrics for targeted pods (pods might be unready)")
    ratio, usage = _ratio(_average(ready), target_m)
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if tol.within(ratio):
            return Proposal(current, usage)
        return Proposal(math.ceil(ratio * len(ready)), usage)
    values = dict(ready)
    for name in missing:  # scale-down: missing pods at target; scale-up: at 0
        values[name] = target_m if ratio < 1.0 else 0
    if scale_up_with_unready:
        for name in unready:
            values[name] = 0
    new_ratio, _ = _ratio(_average(values), target_m)
    if tol.within(new_ratio) or (ratio > 1.0 > new_ratio) or (ratio < 1.0 < new_ratio):
        return Proposal(current, usage)  # too small a change, or the direction flipped
    replicas = math.ceil(new_ratio * len(values))
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return Proposal(current, usage)
    return Proposal(replicas, usage)


def ready_pod_count(pods: Sequence[PodState]) -> int:
    """``getReadyPodsCount``: Running pods with the Ready condition."""
    if not pods:
        raise MetricFetchError("no pods returned by selector while calculating replica count")
    return sum(1 for p in pods if p.phase == "Running" and p.ready and not p.deleting)


def value_metric(current: int, pods: Sequence[PodState], value: float, target: float,
                 tol: Tolerances) -> Proposal:
    """``getUsageRatioReplicaCount``: an Object or External metric with a Value target."""
    usage = milli(value)
    ratio = usage / milli(target)
    if current == 0:
        return Proposal(math.ceil(ratio), usage)  # scale from zero (HPAScaleToZero)
    if tol.within(ratio):
        return Proposal(current, usage)
    return Proposal(math.ceil(ratio * ready_pod_count(pods)), usage)


def average_value_metric(status_replicas: int, value: float, target: float, tol: Tolerances) -> Proposal:
    """``GetObjectPerPodMetricReplicas`` / ``GetExternalPerPodMetricReplicas``: an AverageValue target
    on one number (an Object's aggregate, or the sum of External items): ceil(value / target)."""
    usage, target_m = milli(value), milli(target)
    replicas = status_replicas
    within = status_replicas > 0 and tol.within(usage / (target_m * status_replicas))
    if not within:
        replicas = math.ceil(usage / target_m)
    per_pod = math.ceil(usage / status_replicas) if status_replicas else usage
    return Proposal(replicas, per_pod)
