"""The HPA model against the Kubernetes documentation's worked examples and hand-computed cases.

Docs cited: "Horizontal Pod Autoscaling" (kubernetes.io/docs/concepts/workloads/autoscaling/
horizontal-pod-autoscale/, "Algorithm details", "Configurable scaling behavior") and the
"HorizontalPodAutoscaler Walkthrough" (kubernetes.io/docs/tasks/run-application/
horizontal-pod-autoscale-walkthrough/).
"""

from __future__ import annotations

import pytest

from simulator.autoscaling import (
    HPA,
    Behavior,
    HPASpec,
    MetricTarget,
    PodState,
    ScalingPolicy,
    ScalingRules,
    StaticSource,
)
from simulator.autoscaling.spec import DEFAULT_SCALE_DOWN, DEFAULT_SCALE_UP, SpecError

WAITING = "kvscale_vllm_requests_waiting"
KV = "kvscale_vllm_kv_cache_usage_ratio"
TTFT = "kvscale_vllm_ttft_seconds"


def pods_metric(target: float, name: str = WAITING) -> MetricTarget:
    return MetricTarget("Pods", name, "AverageValue", target)


def fleet(n: int) -> list[PodState]:
    return [PodState(f"p{i}") for i in range(n)]


def each(n: int, value: float, name: str = WAITING) -> StaticSource:
    return StaticSource({name: {f"p{i}": value for i in range(n)}})


def once(spec: HPASpec, current: int, source: StaticSource, pods: list[PodState] | None = None) -> int:
    return HPA(spec).reconcile(0.0, current, fleet(current) if pods is None else pods, source).desired


# --- Algorithm details: desiredReplicas = ceil(currentReplicas * currentMetricValue / desiredMetricValue)

@pytest.mark.parametrize(("current", "value", "want"), [
    (3, 0.2, 6),   # docs: "current metric value is 200m, and the desired value is 100m ... doubled"
    (4, 0.05, 2),  # docs: "If the current value is instead 50m, you'll halve the number of replicas"
    (4, 0.109, 4),  # ratio 1.09: within the default 0.1 tolerance, no action
    (4, 0.092, 4),  # ratio 0.92: within tolerance on the way down too
])
def test_algorithm_details_ratio_examples(current: int, value: float, want: int) -> None:
    spec = HPASpec(1, 20, [pods_metric(0.1)])
    assert once(spec, current, each(current, value)) == want


def test_walkthrough_305_percent_of_target_gives_7_replicas() -> None:
    """Walkthrough: one replica at 305% of its 50% target "was resized to 7 replicas" (ceil(6.1)).
    The same arithmetic on a Pods AverageValue metric (the model serves custom metrics, not CPU).
    One sync without behavior caps the step at max(2 * 1, 4) = 4; the next sync reaches 7."""
    hpa = HPA(HPASpec(1, 10, [pods_metric(0.5)]))
    first = hpa.reconcile(0.0, 1, fleet(1), each(1, 3.05))
    assert (first.recommendation, first.desired) == (7, 4)
    assert hpa.reconcile(15.0, 4, fleet(4), each(4, 0.875)).desired == 7  # 1.75 * 4 = 7, under max(8, 4)


def test_walkthrough_multiple_metrics_take_the_highest_proposal() -> None:
    """Walkthrough, "Autoscaling on multiple metrics": each metric proposes, the largest wins."""
    spec = HPASpec(1, 50, [pods_metric(5.0),  # 4 pods at 10 waiting -> 8
                           MetricTarget("Object", WAITING, "Value", 10.0)])  # 40 vs 10 on 4 ready -> 16
    decision = HPA(spec).reconcile(0.0, 4, fleet(4), StaticSource({WAITING: {f"p{i}": 10 for i in range(4)}},
                                                                   object_values={WAITING: 40.0}))
    assert [p.replicas for p in decision.proposals] == [8, 16]
    assert decision.recommendation == 16
    assert decision.desired == 8  # no behavior: the legacy cap max(2 * 4, 4) limits the step


# --- tolerance, global and per direction (KEP-4951; docs: "Tolerance" with scaleUp.tolerance 0.05)

@pytest.mark.parametrize(("per_pod", "want"), [
    (104.0, 10), (106.0, 11),  # up: 5% -> 104 holds, 106 scales (ceil(10.6))
    (91.0, 10), (89.0, 9),     # down keeps the global 10%: 91 holds, 89 scales (ceil(8.9))
])
def test_per_direction_tolerance(per_pod: float, want: int) -> None:
    behavior = Behavior(scale_up=ScalingRules(DEFAULT_SCALE_UP.policies, "Max", 0, tolerance=0.05),
                        scale_down=ScalingRules(DEFAULT_SCALE_DOWN.policies, "Max", 0))
    spec = HPASpec(1, 20, [pods_metric(100.0)], behavior=behavior)
    assert once(spec, 10, each(10, per_pod)) == want


@pytest.mark.parametrize(("tolerance", "per_pod", "want"), [(0.1, 110.0, 10), (0.1, 111.0, 12), (0.0, 101.0, 11)])
def test_global_tolerance(tolerance: float, per_pod: float, want: int) -> None:
    spec = HPASpec(1, 20, [pods_metric(100.0)], tolerance=tolerance)
    assert once(spec, 10, each(10, per_pod)) == want


# --- missing and not-ready pods (docs: missing pods at 100% of target on scale-down, 0% on scale-up)

def test_missing_pod_counts_at_target_on_scale_down() -> None:
    # ready avg 1/5 = 0.2; with the missing pod at 5: 7000m/3 = 2333m -> 0.4666 * 3 -> 2 (naive: 1)
    source = StaticSource({WAITING: {"p0": 1, "p1": 1}})
    assert once(HPASpec(1, 10, [pods_metric(5)]), 3, source) == 2


def test_missing_pods_at_zero_on_scale_up_can_flip_direction_and_hold() -> None:
    # ready avg 6/5 = 1.2 (up); missing at 0: 12000m/4 -> 0.6 flips direction -> hold 4 (naive: 3)
    source = StaticSource({WAITING: {"p0": 6, "p1": 6}})
    assert once(HPASpec(1, 10, [pods_metric(5)]), 4, source) == 4


def test_pending_pod_counts_as_zero_when_scaling_up() -> None:
    pods = [PodState("p0"), PodState("p1"), PodState("p2", ready=False, phase="Pending")]
    source = StaticSource({WAITING: {"p0": 10, "p1": 10}})
    # 20000m / 3 = 6666m -> 1.3332 * 3 = 3.9996 -> 4 (without the rule: 2.0 * 2 = 4 too, but via 3 samples)
    decision = HPA(HPASpec(1, 10, [pods_metric(5)])).reconcile(0.0, 3, pods, source)
    assert decision.desired == 4
    source = StaticSource({WAITING: {"p0": 6, "p1": 6}})
    # 1.2 up with a pending pod at 0: 12000m/3 = 4000m -> 0.8 flips -> hold at 3
    assert HPA(HPASpec(1, 10, [pods_metric(5)])).reconcile(0.0, 3, pods, source).desired == 3


def test_running_not_ready_pod_with_a_sample_counts_as_ready_for_custom_metrics() -> None:
    pods = [PodState("p0"), PodState("p1", ready=False)]
    source = StaticSource({WAITING: {"p0": 10, "p1": 10}})
    assert once(HPASpec(1, 10, [pods_metric(5)]), 2, source, pods) == 4


def test_deleting_and_failed_pods_are_ignored() -> None:
    pods = [PodState("p0"), PodState("p1", deleting=True), PodState("p2", phase="Failed")]
    source = StaticSource({WAITING: {"p0": 10, "p1": 100, "p2": 100}})
    assert once(HPASpec(1, 10, [pods_metric(5)]), 3, source, pods) == 2  # only p0: ceil(2 * 1)


# --- Object metrics: Value vs AverageValue

@pytest.mark.parametrize(("target_type", "value", "want"), [
    ("Value", 10.0, 6),          # 10/5 = 2 * 3 ready pods (one Running but not Ready) -> 6
    ("AverageValue", 40.0, 8),   # ceil(40/5), whatever the pod count
    ("AverageValue", 21.0, 4),   # 21 / (5 * 4) = 1.05: within tolerance, hold
    ("Value", 5.4, 4),           # 1.08: within tolerance, hold
])
def test_object_value_versus_average_value(target_type: str, value: float, want: int) -> None:
    pods = [PodState("p0"), PodState("p1"), PodState("p2"), PodState("p3", ready=False)]
    metric = MetricTarget("Object", WAITING, target_type, 5.0)  # type: ignore[arg-type]
    assert once(HPASpec(1, 100, [metric], behavior=Behavior()), 4, StaticSource(object_values={WAITING: value}),
                pods) == want


def test_average_value_on_an_intensive_quantity_never_grows_with_the_pool() -> None:
    """The trap: KV usage is a ratio (a fleet mean), TTFT p95 a latency (a fleet max). Held at 0.95
    against 0.75, an AverageValue target proposes ceil(0.95/0.75) = 2 at every pool size (it even
    shrinks a big pool); a Pods metric on the same per-pod values proposes ceil(1.27 * n)."""
    trap = MetricTarget("External", KV, "AverageValue", 0.75)
    right = pods_metric(0.75, KV)
    proposals = {}
    for n in (1, 2, 4, 8, 16):
        trap_hpa = HPA(HPASpec(1, 100, [trap], behavior=Behavior()))
        right_hpa = HPA(HPASpec(1, 100, [right], behavior=Behavior()))
        t = trap_hpa.reconcile(0.0, n, fleet(n), StaticSource(external_values={KV: 0.95})).proposals[0].replicas
        r = right_hpa.reconcile(0.0, n, fleet(n), each(n, 0.95, KV)).proposals[0].replicas
        proposals[n] = (t, r)
    assert proposals == {1: (2, 2), 2: (2, 3), 4: (2, 6), 8: (2, 11), 16: (2, 21)}
    latency = MetricTarget("External", TTFT, "AverageValue", 0.8, {"quantile": "0.95"})
    got = {n: HPA(HPASpec(1, 100, [latency])).reconcile(0.0, n, fleet(n), StaticSource(
        external_values={TTFT: 2.0})).proposals[0].replicas for n in (1, 4, 16)}
    assert got == {1: 3, 4: 3, 16: 3}  # 2.5x over the SLO, and it asks for 3 whatever the load


# --- min/max, disabled, failures, sync period

def test_clamps_and_scale_up_cap() -> None:
    spec = HPASpec(2, 8, [pods_metric(1.0)])
    assert once(spec, 4, each(4, 100.0)) == 8     # legacy cap 8, max 8
    assert once(spec, 1, each(1, 100.0)) == 2    # current below min: clamp first, no metrics read
    assert once(spec, 12, each(12, 100.0)) == 8  # current above max: clamp
    assert once(spec, 4, each(4, 0.01)) == 2     # down to minReplicas
    assert once(HPASpec(1, 100, [pods_metric(1.0)]), 3, each(3, 100.0)) == 6  # max(2 * 3, 4)
    assert HPA(spec).reconcile(0.0, 0, [], StaticSource()).desired == 0  # scaling disabled at zero


def test_failed_metric_holds_a_scale_down_but_not_a_scale_up() -> None:
    spec = HPASpec(1, 20, [pods_metric(5.0), MetricTarget("Object", KV, "Value", 0.75)])
    down = HPA(spec).reconcile(0.0, 4, fleet(4), each(4, 1.0))
    assert down.desired == 4 and down.reason.startswith("hold: failed")
    up = HPA(spec).reconcile(0.0, 4, fleet(4), each(4, 10.0))
    assert up.desired == 8
    assert [p.replicas for p in up.proposals] == [8, None]


def test_sync_period() -> None:
    hpa = HPA(HPASpec(1, 20, [pods_metric(5.0)], behavior=Behavior()))
    assert hpa.reconcile(0.0, 2, fleet(2), each(2, 10.0)).desired == 4
    early = hpa.reconcile(10.0, 4, fleet(4), each(4, 10.0))
    assert (early.synced, early.desired) == (False, 4)
    assert hpa.reconcile(15.0, 4, fleet(4), each(4, 10.0)).desired == 8


# --- stabilization windows

def run(hpa: HPA, steps: list[tuple[float, float]], start: int) -> list[int]:
    """Sync at each (time, per-pod value); the scale follows each decision at once."""
    current, out = start, []
    for now, value in steps:
        current = hpa.reconcile(now, current, fleet(current), each(current, value)).desired
        out.append(current)
    return out


def test_scale_down_stabilization_window() -> None:
    behavior = Behavior(scale_down=ScalingRules(DEFAULT_SCALE_DOWN.policies, "Max", 60))
    hpa = HPA(HPASpec(1, 20, [pods_metric(5.0)], behavior=behavior))
    # t=0 recommends 10 (at target); then load drops to 2/pod -> 4, held until t=0 leaves the 60 s window
    assert run(hpa, [(0, 5.0), (15, 2.0), (30, 2.0), (45, 2.0), (60, 2.0)], 10) == [10, 10, 10, 10, 4]


def test_legacy_path_keeps_the_max_of_five_minutes() -> None:
    hpa = HPA(HPASpec(1, 20, [pods_metric(5.0)]))
    out = run(hpa, [(0, 5.0), (150, 2.0), (299, 2.0), (315, 2.0)], 10)
    assert out == [10, 10, 10, 4]


def test_scale_up_stabilization_window_takes_the_minimum() -> None:
    behavior = Behavior(scale_up=ScalingRules(DEFAULT_SCALE_UP.policies, "Max", 30))
    hpa = HPA(HPASpec(1, 20, [pods_metric(5.0)], behavior=behavior))
    assert run(hpa, [(0, 5.0), (15, 15.0), (30, 5.0), (45, 5.0)], 2) == [2, 2, 2, 2]  # a blip is ignored
    hpa = HPA(HPASpec(1, 20, [pods_metric(5.0)], behavior=behavior))
    assert run(hpa, [(0, 5.0), (15, 15.0), (30, 15.0), (45, 5.0)], 2) == [2, 2, 6, 6]


# --- policies and selectPolicy

def test_docs_scale_down_policies_80_replicas() -> None:
    """Docs, "Scaling Policies": Pods 4/60 s and Percent 10/60 s; from 80 the first step removes 8
    (10%), and "in the next iteration when the number of replicas is 72, 10% of the pods is 7.2 but the
    number is rounded up to 8" (72 -> 64). Below 40 replicas the Pods policy (4) removes more."""
    rules = ScalingRules((ScalingPolicy("Pods", 4, 60), ScalingPolicy("Percent", 10, 60)), "Max", 0)
    hpa = HPA(HPASpec(1, 100, [pods_metric(8.0)], behavior=Behavior(scale_down=rules)))
    times = [(t * 15.0, 1.0) for t in range(0, 61)]  # each pod at 1 against 8: asks for n/8
    out = run(hpa, times, 80)
    assert out[:4] == [72, 72, 72, 72]  # within the 60 s period nothing more goes
    by_minute = out[::4]
    # 80 -72 (10%) -64 (72*0.9 = 64.8 -> 64: 8 removed) -57 -51 -45 -40 -36 (both 4) -32 -28 (Pods 4)
    assert by_minute[:9] == [72, 64, 57, 51, 45, 40, 36, 32, 28]


@pytest.mark.parametrize(("select", "want"), [("Max", 20), ("Min", 14), ("Disabled", 10)])
def test_select_policy_on_scale_up(select: str, want: int) -> None:
    rules = ScalingRules((ScalingPolicy("Pods", 4, 60), ScalingPolicy("Percent", 100, 60)), select)  # type: ignore[arg-type]
    spec = HPASpec(1, 100, [pods_metric(1.0)], behavior=Behavior(scale_up=rules))
    assert once(spec, 10, each(10, 10.0)) == want


def test_docs_limit_scale_down_to_5_pods_per_minute_with_select_min() -> None:
    """Docs: Percent 10/60 s and Pods 5/60 s with selectPolicy Min: "no more than 5 Pods are removed
    per minute" -- from 100 that is 95 (10% would be 90); from 30, 3 (10%) beats 5."""
    rules = ScalingRules((ScalingPolicy("Percent", 10, 60), ScalingPolicy("Pods", 5, 60)), "Min", 0)
    spec = HPASpec(1, 100, [pods_metric(10.0)], behavior=Behavior(scale_down=rules))
    assert once(spec, 100, each(100, 1.0)) == 95
    assert once(spec, 30, each(30, 1.0)) == 27


def test_scale_up_policy_period_counts_earlier_scaling() -> None:
    rules = ScalingRules((ScalingPolicy("Pods", 2, 60),), "Max", 0)
    hpa = HPA(HPASpec(1, 50, [pods_metric(1.0)], behavior=Behavior(scale_up=rules)))
    assert run(hpa, [(0, 10.0), (15, 10.0), (45, 10.0), (60, 10.0), (75, 10.0)], 2) == [4, 4, 4, 6, 6]


def test_default_behavior_adds_max_of_4_pods_or_100_percent() -> None:
    spec = HPASpec(1, 100, [pods_metric(1.0)], behavior=Behavior())
    assert once(spec, 1, each(1, 50.0)) == 5     # max(1 + 4, 2)
    assert once(spec, 10, each(10, 50.0)) == 20  # max(14, 20)


@pytest.mark.parametrize("bad", [
    lambda: MetricTarget("Pods", WAITING, "Value", 1.0),
    lambda: MetricTarget("Pods", "not_a_family", "AverageValue", 1.0),
    lambda: MetricTarget("Pods", WAITING, "AverageValue", 0.0),
    lambda: HPASpec(0, 4, [pods_metric(1.0)]),
    lambda: HPASpec(3, 2, [pods_metric(1.0)]),
    lambda: ScalingPolicy("Pods", 1, 1801),
])
def test_invalid_specs_are_rejected(bad: object) -> None:
    with pytest.raises(SpecError):
        bad()  # type: ignore[operator]
