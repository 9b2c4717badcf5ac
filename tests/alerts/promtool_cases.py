"""promtool unit-test cases for every alert, written by hand against the default thresholds.

Each case gives input series just above the line (the alert must be pending one step
before its ``for`` and firing at it) and one or more scenarios just below it (the alert
must stay quiet). ``to_promtool`` turns the table into a ``promtool test rules`` file;
the expected ``for`` and descriptions are spelled out here, not read from the code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Series = tuple[str, str]  # (series selector, promtool value notation)

EXP = 'job="kvscale-exporter", instance="10.0.0.1:9400"'
POD = 'namespace="demo", pod="vllm-a", model_name="tiny-llama"'
POD_LABELS = {"job": "kvscale-exporter", "instance": "10.0.0.1:9400",
              "namespace": "demo", "pod": "vllm-a", "model_name": "tiny-llama"}
GPU = 'node="gpu-node-1", gpu="0", uuid="GPU-1234", gpu_model="NVIDIA H100 80GB HBM3"'
GPU_LABELS = {"job": "kvscale-exporter", "instance": "10.0.0.1:9400", "node": "gpu-node-1", "gpu": "0",
              "uuid": "GPU-1234", "gpu_model": "NVIDIA H100 80GB HBM3"}
# Who holds the GPU is its own info series; the alert text looks it up, the alert labels never carry it.
HOLDER = (f'kvscale_gpu_allocation_info{{{EXP}, node="gpu-node-1", gpu="0", uuid="GPU-1234", namespace="demo", '
          'pod="vllm-a", container="vllm", pod_uid="", resource="nvidia.com/gpu", claim=""}', "1x30")
GPU_TEXT = "GPU 0 (NVIDIA H100 80GB HBM3, GPU-1234) on node gpu-node-1, used by demo/vllm-a"
IDLE_GPU_TEXT = "GPU 0 (NVIDIA H100 80GB HBM3, GPU-1234) on node gpu-node-1"
KSM = 'job="kube-state-metrics", namespace="demo"'
HPA = f'{KSM}, horizontalpodautoscaler="vllm"'
HPA_LABELS = {"job": "kube-state-metrics", "namespace": "demo", "horizontalpodautoscaler": "vllm"}


@dataclass(frozen=True)
class Firing:
    labels: dict[str, str]
    description: str


@dataclass(frozen=True)
class Case:
    alert: str
    for_minutes: int
    above: tuple[Series, ...]
    firing: tuple[Firing, ...]
    below: tuple[tuple[Series, ...], ...]
    true_from: int = 0  # minute at which the condition first holds in ``above``
    quiet_at: int | None = None  # when to check ``below`` (default: when ``above`` fires)
    extra: tuple[tuple[int, tuple[Firing, ...]], ...] = field(default=())  # (minute, alerts) on ``above``

    @property
    def fire_at(self) -> int:
        return self.true_from + self.for_minutes


def _hpa_inputs(current: int, maximum: int, saturations: tuple[float, float]) -> tuple[Series, ...]:
    owner = f'{KSM}, owner_kind="ReplicaSet", owner_name="vllm-7d9f"'
    return (
        (f"kube_horizontalpodautoscaler_status_current_replicas{{{HPA}}}", f"{current}x30"),
        (f"kube_horizontalpodautoscaler_spec_max_replicas{{{HPA}}}", f"{maximum}x30"),
        (f'kube_horizontalpodautoscaler_info{{{HPA}, scaletargetref_kind="Deployment", '
         'scaletargetref_name="vllm"}', "1x30"),
        (f'kube_pod_owner{{{owner}, pod="vllm-7d9f-aaaaa"}}', "1x30"),
        (f'kube_pod_owner{{{owner}, pod="vllm-7d9f-bbbbb"}}', "1x30"),
        (f'kube_replicaset_owner{{{KSM}, replicaset="vllm-7d9f", owner_kind="Deployment", owner_name="vllm"}}',
         "1x30"),
        (f'kvscale_vllm_saturation_ratio{{{EXP}, namespace="demo", pod="vllm-7d9f-aaaaa", '
         'model_name="tiny-llama"}', f"{saturations[0]}x30"),
        (f'kvscale_vllm_saturation_ratio{{{EXP}, namespace="demo", pod="vllm-7d9f-bbbbb", '
         'model_name="tiny-llama"}', f"{saturations[1]}x30"),
        # A pod of another Deployment in the namespace must not count towards this HPA.
        (f'kvscale_vllm_saturation_ratio{{{EXP}, namespace="demo", pod="other-1", model_name="other"}}', "9x30"),
    )


def _hpa_condition(false_value: int, metric: str) -> tuple[Series, ...]:
    cond = f'kube_horizontalpodautoscaler_status_condition{{{HPA}, condition="ScalingActive"'
    return (
        (f'{cond}, status="false"}}', f"{false_value}x30"),
        (f'{cond}, status="true"}}', f"{1 - false_value}x30"),
        (f'kube_horizontalpodautoscaler_spec_target_metric{{{HPA}, metric_name="{metric}", '
         'metric_target_type="average"}', "5x30"),
    )


def _vllm_series(metric: str, values: str, extra: str = "") -> Series:
    return (f"{metric}{{{EXP}, {POD}{extra}}}", values)


CASES: tuple[Case, ...] = (
    Case("KvscaleKVCacheNearlyFull", 5,
         (_vllm_series("kvscale_vllm_kv_cache_usage_ratio", "0.86x30"),),
         (Firing(POD_LABELS, "The KV cache of demo/vllm-a (tiny-llama) is 86% full, above 85% for 5m. "
                             "New requests wait for blocks and running ones get preempted."),),
         ((_vllm_series("kvscale_vllm_kv_cache_usage_ratio", "0.84x30"),),
          (_vllm_series("kvscale_vllm_kv_cache_usage_ratio", "0.85x30"),))),
    Case("KvscaleKVFragmentationHigh", 10,
         (_vllm_series("kvscale_vllm_kv_cache_fragmentation_ratio", "0.21x30"),),
         (Firing(POD_LABELS, "An estimated 21% of the KV slots in use by demo/vllm-a (tiny-llama) are "
                             "allocated but unfilled (line 20%). The pod fills up and preempts earlier "
                             "than its capacity suggests."),),
         ((_vllm_series("kvscale_vllm_kv_cache_fragmentation_ratio", "0.19x30"),),
          (_vllm_series("kvscale_vllm_kv_cache_fragmentation_ratio", "0.2x30"),))),
    Case("KvscaleTTFTOverSLO", 5,
         (_vllm_series("kvscale_vllm_ttft_seconds", "0.81x30", ', quantile="0.95"'),),
         (Firing({**POD_LABELS, "quantile": "0.95"},
                 "p95 time to first token of demo/vllm-a (tiny-llama) is 810ms, over the 0.8s SLO for 5m."),),
         ((_vllm_series("kvscale_vllm_ttft_seconds", "0.79x30", ', quantile="0.95"'),
           # Only p95 is the SLO: a slow p99 alone must not page.
           _vllm_series("kvscale_vllm_ttft_seconds", "5x30", ', quantile="0.99"')),)),
    Case("KvscaleQueueBacklogGrowing", 10,
         (_vllm_series("kvscale_vllm_requests_waiting", "6+1x30"),
          (f'kvscale_vllm_requests_waiting{{{EXP}, namespace="demo", pod="vllm-b", model_name="tiny-llama"}}',
           "6+1x30")),
         (Firing({"namespace": "demo", "model_name": "tiny-llama"},
                 "demo/tiny-llama has 17.0 requests waiting per pod (target 5) and the queue has kept "
                 "growing for 10m."),),
         # Above target but flat: the autoscaler holds it; growing but still under target.
         ((_vllm_series("kvscale_vllm_requests_waiting", "8x30"),),
          (_vllm_series("kvscale_vllm_requests_waiting", "4.5+0.04x30"),)),
         true_from=1),
    Case("KvscalePreemptions", 5,
         (_vllm_series("kvscale_vllm_preemptions_per_second", "0.11x30"),),
         (Firing(POD_LABELS, "demo/vllm-a (tiny-llama) preempts 0.11 requests per second (line 0.1/s) for "
                             "5m; each preemption recomputes a request's KV cache."),),
         ((_vllm_series("kvscale_vllm_preemptions_per_second", "0.09x30"),),
          (_vllm_series("kvscale_vllm_preemptions_per_second", "0.1x30"),))),
    Case("KvscaleAdmissionRejections", 5,
         (_vllm_series("kvscale_vllm_admission_rejections_per_second", "0.1x30"),),
         (Firing(POD_LABELS, "demo/vllm-a (tiny-llama) rejects 0.10 requests per second at admission "
                             "(a queue limit reached), for 5m."),),
         # The line is 0 rejections per second: none at all stays quiet.
         ((_vllm_series("kvscale_vllm_admission_rejections_per_second", "0x30"),),)),
    Case("KvscaleVLLMTargetDown", 10,
         (_vllm_series("kvscale_vllm_up", "0x30"),),
         (Firing(POD_LABELS, "The exporter has not read /metrics of demo/vllm-a (tiny-llama) for 10m: the "
                             "engine is down, hung or still loading. Its kvscale series are gone, so the "
                             "HPA treats the pod as missing."),),
         ((_vllm_series("kvscale_vllm_up", "1x30"),),)),
    Case("KvscaleGPULost", 1,
         ((f"kvscale_gpu_up{{{EXP}, {GPU}}}", "0x30"), HOLDER),
         (Firing(GPU_LABELS, f"NVML cannot read {GPU_TEXT} for 1m."),),
         (((f"kvscale_gpu_up{{{EXP}, {GPU}}}", "1x30"),),)),
    Case("KvscaleGPUXidErrors", 0,
         ((f'kvscale_gpu_xid_errors_total{{{EXP}, {GPU}, xid="79"}}', "0x15 1x20"),
          # A code seen for the first time appears at 1: increase() alone would miss it.
          (f'kvscale_gpu_xid_errors_total{{{EXP}, {GPU}, xid="48"}}', "_x16 1x19"), HOLDER),
         (Firing({**GPU_LABELS, "xid": "79"}, f"{GPU_TEXT} reported XID 79 in the last 10m."),
          Firing({**GPU_LABELS, "xid": "48"}, f"{GPU_TEXT} reported XID 48 in the last 10m.")),
         # Errors counted long ago, none since: quiet once they are older than the window.
         (((f'kvscale_gpu_xid_errors_total{{{EXP}, {GPU}, xid="13"}}', "3x40"),),),
         true_from=16, quiet_at=20,
         extra=((27, ()),)),  # the alert clears once the error leaves the window
    Case("KvscaleGPUMemoryNearFull", 5,
         ((f"kvscale_gpu_memory_used_bytes{{{EXP}, {GPU}}}", "76800000000x30"),
          (f"kvscale_gpu_memory_total_bytes{{{EXP}, {GPU}}}", "80000000000x30")),
         (Firing(GPU_LABELS, f"{IDLE_GPU_TEXT} has 96% of its memory in use (line 95%) for 5m."),),
         (((f"kvscale_gpu_memory_used_bytes{{{EXP}, {GPU}}}", "76000000000x30"),
           (f"kvscale_gpu_memory_total_bytes{{{EXP}, {GPU}}}", "80000000000x30")),)),
    Case("KvscaleExporterAbsent", 5,
         (('up{job="kvscale-exporter", instance="10.0.0.1:9400"}', "0x30"),),
         (Firing({}, 'Prometheus has had no healthy target matching {job="kvscale-exporter"} for 5m.'),),
         (((f"up{{{EXP}}}", "1x30"), ('up{job="kvscale-exporter", instance="10.0.0.2:9400"}', "0x30")),)),
    Case("KvscaleExporterDown", 5,
         ((f"up{{{EXP}}}", "0x30"),),
         (Firing({"job": "kvscale-exporter", "instance": "10.0.0.1:9400"},
                 "Prometheus cannot scrape the exporter 10.0.0.1:9400 for 5m."),),
         (((f"up{{{EXP}}}", "1x30"),),)),
    Case("KvscaleExporterCollectorFailing", 10,
         ((f'kvscale_exporter_collector_success{{{EXP}, collector="gpu"}}', "0x30"),),
         (Firing({"job": "kvscale-exporter", "instance": "10.0.0.1:9400", "collector": "gpu"},
                 "The gpu collector of exporter 10.0.0.1:9400 has failed every run for 10m; the exporter "
                 "log has the cause."),),
         (((f'kvscale_exporter_collector_success{{{EXP}, collector="gpu"}}', "1x30"),),)),
    Case("KvscaleAdapterAbsent", 5,
         (('up{job="kvscale-exporter", instance="10.0.0.1:9400"}', "1x30"),),
         (Firing({}, 'Prometheus has had no healthy target matching {job="kvscale-adapter"} for 5m.'),),
         ((('up{job="kvscale-adapter", instance="10.0.0.9:6443"}', "1x30"),),)),
    Case("KvscaleHPAMaxedOutSaturated", 15,
         _hpa_inputs(4, 4, (1.05, 1.15)),
         (Firing(HPA_LABELS, "HPA demo/vllm has run at its maximum of 4 replicas for 15m while its pods stay "
                             "over their scaling target: demand exceeds the capacity it is allowed to add."),),
         (_hpa_inputs(4, 4, (0.95, 1.05)), _hpa_inputs(3, 4, (1.5, 1.5)))),
    Case("KvscaleHPAMetricsUnavailable", 10,
         _hpa_condition(1, "kvscale_vllm_requests_waiting"),
         (Firing(HPA_LABELS | {"condition": "ScalingActive", "status": "false"},
                 "HPA demo/vllm has reported ScalingActive=False for 10m: it cannot read its kvscale "
                 "metrics and holds the replica count where it is."),),
         (_hpa_condition(0, "kvscale_vllm_requests_waiting"), _hpa_condition(1, "cpu"))),
)


def _series(items: tuple[Series, ...]) -> list[dict[str, str]]:
    return [{"series": s, "values": v} for s, v in items]


def _alerts(firing: tuple[Firing, ...], annotations: dict[str, dict[str, str]], alert: str,
            severity: str) -> list[dict[str, Any]]:
    return [{"exp_labels": {**f.labels, "severity": severity},
             "exp_annotations": {**annotations[alert], "description": f.description}} for f in firing]


def to_promtool(case: Case, *, severity: str, annotations: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """promtool test groups for one case. ``annotations`` gives each alert's static annotations
    (summary, runbook_url) from the build; the description is this table's."""
    def check(minute: int, firing: tuple[Firing, ...]) -> dict[str, Any]:
        return {"eval_time": f"{minute}m", "alertname": case.alert,
                "exp_alerts": _alerts(firing, annotations, case.alert, severity)}

    above_checks = [check(case.fire_at, case.firing)]
    if case.fire_at >= 1:
        above_checks.insert(0, check(case.fire_at - 1, ()))  # pending, not yet firing
    above_checks += [check(minute, firing) for minute, firing in case.extra]
    groups = [{"interval": "1m", "input_series": _series(case.above), "alert_rule_test": above_checks}]
    quiet = case.fire_at if case.quiet_at is None else case.quiet_at
    for scenario in case.below:
        groups.append({"interval": "1m", "input_series": _series(scenario),
                       "alert_rule_test": [check(quiet, ()), check(quiet + 10, ())]})
    return groups
