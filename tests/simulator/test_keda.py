"""The KEDA ScaledObject model: polling, activation, cooldown to zero, the HPA above zero, fallback."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from simulator.autoscaling import Behavior, PodState, ScalingRules
from simulator.autoscaling.keda import Fallback, KedaDecision, ScaledObject, ScaledObjectSpec, Trigger
from simulator.autoscaling.spec import DEFAULT_SCALE_DOWN, SpecError

QUEUE = Trigger("kvscale_vllm_requests_waiting", threshold=5.0, activation_threshold=0.0)


def fleet(n: int) -> list[PodState]:
    return [PodState(f"p{i}") for i in range(n)]


def constant(value: float | None) -> Callable[[Trigger], float | None]:
    return lambda _t: value


def drive(so: ScaledObject, start: int, value_at: Callable[[float], float | None], until: float,
          every: float = 15.0) -> list[tuple[float, KedaDecision]]:
    """Step every ``every`` seconds; the scale follows each decision at once."""
    current, out, now = start, [], 0.0
    while now <= until:
        decision = so.step(now, current, fleet(current), constant(value_at(now)))
        current = decision.desired
        out.append((now, decision))
        now += every
    return out


def replicas(trace: list[tuple[float, KedaDecision]]) -> dict[float, int]:
    return {t: d.desired for t, d in trace}


def test_activation_waits_for_the_next_poll() -> None:
    so = ScaledObject(ScaledObjectSpec([QUEUE], polling_interval=30.0))
    trace = replicas(drive(so, 0, lambda t: 0.0 if t < 5 else 3.0, 60.0))
    assert trace == {0.0: 0, 15.0: 0, 30.0: 1, 45.0: 1, 60.0: 1}  # at 0 the HPA cannot act; KEDA's poll at 30 does


def test_activation_threshold_gates_zero_to_one_only() -> None:
    gated = Trigger("kvscale_vllm_requests_waiting", threshold=5.0, activation_threshold=5.0)
    so = ScaledObject(ScaledObjectSpec([gated], polling_interval=10.0))
    assert so.step(0.0, 0, [], lambda _t: 4.0).desired == 0
    assert so.step(10.0, 0, [], lambda _t: 6.0).desired == 1
    # Above zero the HPA scales on the value, activation aside: ceil(20 / 5) = 4 from 1 pod.
    assert so.step(20.0, 1, fleet(1), lambda _t: 20.0).desired == 4


def test_hpa_scales_one_to_n_on_ceil_value_over_threshold() -> None:
    so = ScaledObject(ScaledObjectSpec([QUEUE], min_replica_count=1, max_replica_count=10, behavior=Behavior()))
    d = so.step(0.0, 2, fleet(2), lambda _t: 42.0)
    assert d.desired == 6  # ceil(42/5) = 9, limited by the default policy max(2 + 4, 2 * 2) = 6
    assert d.hpa is not None and d.hpa.recommendation == 9
    assert so.hpa.spec.metrics[0].metric == "s0-prometheus"
    assert so.hpa.spec.min_replicas == 1


def test_cooldown_before_scale_to_zero() -> None:
    quick_down = Behavior(scale_down=ScalingRules(DEFAULT_SCALE_DOWN.policies, "Max", 60))
    so = ScaledObject(ScaledObjectSpec([QUEUE], polling_interval=30.0, cooldown_period=300.0, behavior=quick_down))
    trace = drive(so, 2, lambda t: 10.0 if t < 10 else 0.0, 420.0)
    got = replicas(trace)
    assert got[0.0] == 2            # active: last active at 0
    assert got[45.0] == 2 and got[75.0] == 1  # the HPA went down to its minReplicas (1) after its 60 s window
    assert got[300.0] == 0          # first poll with 300 s since the last active one
    assert all(got[t] == 0 for t in got if t >= 300.0)
    assert [d.reason for t, d in trace if t == 300.0] == ["inactive past cooldownPeriod: scale to zero"]


def test_minimum_above_zero_never_scales_to_zero() -> None:
    so = ScaledObject(ScaledObjectSpec([QUEUE], min_replica_count=1, cooldown_period=0.0))
    assert set(replicas(drive(so, 1, lambda t: 0.0, 600.0)).values()) == {1}


def test_fallback_after_failure_threshold_then_recovery() -> None:
    spec = ScaledObjectSpec([QUEUE], min_replica_count=1, fallback=Fallback(failure_threshold=3, replicas=6),
                            behavior=Behavior())
    so = ScaledObject(spec)
    trace = replicas(drive(so, 2, lambda t: None if t < 100 else 5.0, 150.0))
    # HPA reads at 0, 15, 30 fail (1..3: hold); the 4th (t=45) is past the threshold: 6 * 5 -> 6 replicas
    assert [trace[t] for t in (0.0, 15.0, 30.0, 45.0, 60.0)] == [2, 2, 2, 6, 6]
    assert so.failures == 0 and not so.fallback_active  # reads succeed again from t=105


@pytest.mark.parametrize(("behavior", "current", "want"), [
    ("static", 8, 6), ("currentReplicasIfHigher", 8, 8), ("currentReplicasIfHigher", 3, 6),
    ("currentReplicasIfLower", 3, 3), ("currentReplicasIfLower", 8, 6)])
def test_fallback_behaviors(behavior: str, current: int, want: int) -> None:
    fallback = Fallback(failure_threshold=0, replicas=6, behavior=behavior)  # type: ignore[arg-type]
    so = ScaledObject(ScaledObjectSpec([QUEUE], min_replica_count=1, fallback=fallback, behavior=Behavior()))
    assert so.step(0.0, current, fleet(current), lambda _t: None).desired == want


def test_fallback_at_zero_replicas_comes_from_the_scale_loop() -> None:
    so = ScaledObject(ScaledObjectSpec([QUEUE], polling_interval=30.0, fallback=Fallback(2, 3)))
    trace = replicas(drive(so, 0, lambda t: None, 90.0, every=30.0))
    assert trace == {0.0: 0, 30.0: 0, 60.0: 3, 90.0: 3}


def test_failure_without_fallback_holds() -> None:
    so = ScaledObject(ScaledObjectSpec([QUEUE], min_replica_count=1))
    assert set(replicas(drive(so, 3, lambda t: None, 120.0)).values()) == {3}


def test_negative_values_read_as_zero() -> None:
    so = ScaledObject(ScaledObjectSpec([QUEUE], min_replica_count=1, behavior=Behavior()))
    d = so.step(0.0, 4, fleet(4), lambda _t: -20.0)
    assert d.hpa is not None and d.hpa.proposals[0].usage == 0.0


@pytest.mark.parametrize("bad", [
    lambda: ScaledObjectSpec([]),
    lambda: ScaledObjectSpec([QUEUE], min_replica_count=5, max_replica_count=2),
    lambda: ScaledObjectSpec([QUEUE], polling_interval=0),
    lambda: Trigger("kvscale_vllm_requests_waiting", threshold=0),
])
def test_invalid_scaled_objects_are_rejected(bad: Callable[[], object]) -> None:
    with pytest.raises(SpecError):
        bad()
