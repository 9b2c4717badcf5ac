"""Normalization of a recommendation: stabilization windows, scaling policies, min/max.

A transcription of ``horizontal.go`` (``normalizeDesiredReplicas`` and
``normalizeDesiredReplicasWithBehaviors``): the controller keeps every recommendation it made, with
its time, and every scale event; the window and the policies read those histories at ``now``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from simulator.autoscaling.spec import Behavior, ScalingRules

SCALE_UP_LIMIT_FACTOR = 2.0  # legacy path (no behavior): at most max(2 * current, 4)
SCALE_UP_LIMIT_MINIMUM = 4.0


@dataclass(frozen=True)
class Normalized:
    replicas: int
    reason: str  # the controller's condition reason: ScaleDownStabilized, ScaleUpLimit, TooFewReplicas, ...


@dataclass
class History:
    """The controller's per-HPA memory: timestamped recommendations and scale events."""

    recommendations: list[tuple[float, int]] = field(default_factory=list)
    scale_up_events: list[tuple[float, int]] = field(default_factory=list)
    scale_down_events: list[tuple[float, int]] = field(default_factory=list)

    def record_scale(self, now: float, before: int, after: int) -> None:
        if after > before:
            self.scale_up_events.append((now, after - before))
        elif after < before:
            self.scale_down_events.append((now, before - after))

    def prune(self, now: float, keep_seconds: float) -> None:
        """Forget what no window or period can still see (the controller reuses old slots)."""
        cutoff = now - keep_seconds
        for events in (self.recommendations, self.scale_up_events, self.scale_down_events):
            events[:] = [e for e in events if e[0] >= cutoff]


def legacy(history: History, now: float, current: int, desired: int, *, min_replicas: int, max_replicas: int,
           window: float) -> Normalized:
    """No ``behavior``: max over the last ``window`` seconds, then ``convertDesiredReplicasWithRules``."""
    cutoff = now - window
    stabilized = max([desired] + [r for t, r in history.recommendations if t >= cutoff])
    history.recommendations.append((now, desired))
    reason = "ScaleDownStabilized" if stabilized != desired else "ReadyForNewScale"
    limit = int(max(SCALE_UP_LIMIT_FACTOR * current, SCALE_UP_LIMIT_MINIMUM))
    upper = min(max_replicas, limit)
    if stabilized < min_replicas:
        return Normalized(min_replicas, "TooFewReplicas")
    if stabilized > upper:
        return Normalized(upper, "ScaleUpLimit" if limit < max_replicas else "TooManyReplicas")
    return Normalized(stabilized, reason)


def _change_in_period(events: list[tuple[float, int]], now: float, period: float) -> int:
    return sum(change for t, change in events if t > now - period)


def scale_up_limit(history: History, now: float, current: int, rules: ScalingRules) -> int:
    if rules.select_policy == "Disabled":
        return current
    proposals = []
    for policy in rules.policies:
        start = (current - _change_in_period(history.scale_up_events, now, policy.period_seconds)
                 + _change_in_period(history.scale_down_events, now, policy.period_seconds))
        if policy.type == "Pods":
            proposals.append(start + policy.value)
        else:  # rounded up, or a small pool could never grow
            proposals.append(math.ceil(start * (1 + policy.value / 100)))
    return min(proposals) if rules.select_policy == "Min" else max(proposals)


def scale_down_limit(history: History, now: float, current: int, rules: ScalingRules) -> int:
    if rules.select_policy == "Disabled":
        return current
    proposals = []
    for policy in rules.policies:
        start = (current - _change_in_period(history.scale_up_events, now, policy.period_seconds)
                 + _change_in_period(history.scale_down_events, now, policy.period_seconds))
        if policy.type == "Pods":
            proposals.append(start - policy.value)
        else:
            proposals.append(int(start * (1 - policy.value / 100)))  # Go int32() truncates
    return max(proposals) if rules.select_policy == "Min" else min(proposals)


def with_behavior(history: History, now: float, current: int, desired: int, *, min_replicas: int,
                  max_replicas: int, behavior: Behavior, default_down_window: float) -> Normalized:
    up, down = behavior.scale_up, behavior.scale_down
    up_window = up.stabilization_window_seconds or 0.0
    down_window = default_down_window if down.stabilization_window_seconds is None \
        else down.stabilization_window_seconds
    # stabilizeRecommendationWithBehaviors: up-window min, down-window max, both strictly newer.
    up_rec, down_rec = desired, desired
    for t, rec in history.recommendations:
        if t > now - up_window:
            up_rec = min(up_rec, rec)
        if t > now - down_window:
            down_rec = max(down_rec, rec)
    stabilized = min(max(current, up_rec), down_rec)
    history.recommendations.append((now, desired))
    reason = "ScaleUpStabilized" if stabilized < desired else \
        "ScaleDownStabilized" if stabilized > desired else "ReadyForNewScale"
    # convertDesiredReplicasWithBehaviorRate
    if stabilized > current:
        limit = max(scale_up_limit(history, now, current, up), current)
        upper = min(max_replicas, limit)
        if stabilized > upper:
            return Normalized(upper, "ScaleUpLimit" if limit < max_replicas else "TooManyReplicas")
    elif stabilized < current:
        limit = min(scale_down_limit(history, now, current, down), current)
        lower = max(min_replicas, limit)
        if stabilized < lower:
            return Normalized(lower, "ScaleDownLimit" if limit > min_replicas else "TooFewReplicas")
    return Normalized(stabilized, reason)
