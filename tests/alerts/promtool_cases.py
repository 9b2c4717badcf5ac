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
MODEL_LABELS = {"namespace": "demo", "model_name": "tiny-llama"}
ECC_UNCORRECTED = 'error_type="uncorrected", counter_type="volatile"'
ADAPTER = 'job="kvscale-adapter", instance="10.0.0.9:6443"'


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


def _engine(running: str, waiting: str, tokens: str) -> tuple[Series, ...]:
    return (_vllm_series("kvscale_vllm_requests_running", running),
            _vllm_series("kvscale_vllm_requests_waiting", waiting),
            _vllm_series("kvscale_vllm_generation_tokens_per_second", tokens))


def _other_pod(metric: str, values: str) -> Series:
    return (f'{metric}{{{EXP}, namespace="demo", pod="vllm-b", model_name="tiny-llama"}}', values)


def _requests(reason: str, values: str) -> Series:
    """vLLM's own finished-requests counter, as Prometheus scraping the pod stores it."""
    return (f'vllm:request_success_total{{job="vllm", {POD}, engine="0", finished_reason="{reason}"}}', values)


def _hpa_metric(metric: str) -> tuple[Series, ...]:
    return ((f'kube_horizontalpodautoscaler_spec_target_metric{{{HPA}, metric_name="{metric}", '
             'metric_target_type="average"}', "5x30"),)


def _hpa_replicas(desired: int, current: int, metric: str) -> tuple[Series, ...]:
    return ((f"kube_horizontalpodautoscaler_status_desired_replicas{{{HPA}}}", f"{desired}x30"),
            (f"kube_horizontalpodautoscaler_status_current_replicas{{{HPA}}}", f"{current}x30"),
            *_hpa_metric(metric))


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
           _vllm_series("kvscale_vllm_ttft_seconds", "5x30", ', quantile="0.99"')),
          # A slow p95 on a pod finishing one request a minute (under the 0.1/s floor) must not page either.
          (_vllm_series("kvscale_vllm_ttft_seconds", "5x30", ', quantile="0.95"'),
           _requests("stop", "0+1x30")))),
    # Over the floor (1 request per second) the slow p95 pages.
    Case("KvscaleTTFTOverSLO", 5,
         (_vllm_series("kvscale_vllm_ttft_seconds", "2x30", ', quantile="0.95"'), _requests("stop", "0+60x30")),
         (Firing({**POD_LABELS, "quantile": "0.95"},
                 "p95 time to first token of demo/vllm-a (tiny-llama) is 2s, over the 0.8s SLO for 5m."),),
         ((_vllm_series("kvscale_vllm_ttft_seconds", "0.5x30", ', quantile="0.95"'), _requests("stop", "0+60x30")),)),
    Case("KvscaleInterTokenLatencyOverSLO", 5,
         (_vllm_series("kvscale_vllm_inter_token_latency_seconds", "0.11x30", ', quantile="0.95"'),),
         (Firing({**POD_LABELS, "quantile": "0.95"},
                 "p95 inter-token latency of demo/vllm-a (tiny-llama) is 110ms, over the 0.1s SLO for 5m."),),
         ((_vllm_series("kvscale_vllm_inter_token_latency_seconds", "0.09x30", ', quantile="0.95"'),),
          (_vllm_series("kvscale_vllm_inter_token_latency_seconds", "0.5x30", ', quantile="0.95"'),
           _requests("stop", "0+2x30")))),
    Case("KvscaleE2ELatencyOverSLO", 5,
         (_vllm_series("kvscale_vllm_e2e_latency_seconds", "61x30", ', quantile="0.95"'),),
         (Firing({**POD_LABELS, "quantile": "0.95"},
                 "p95 end-to-end latency of demo/vllm-a (tiny-llama) is 1m 1s, over the 60s SLO for 5m."),),
         ((_vllm_series("kvscale_vllm_e2e_latency_seconds", "59x30", ', quantile="0.95"'),),)),
    Case("KvscaleRequestErrors", 5,
         (_requests("stop", "0+54x30"), _requests("error", "0+6x30")),
         (Firing(MODEL_LABELS, "10% of the requests demo/tiny-llama finished ended in error (line 5%) for 5m."),),
         ((_requests("stop", "0+58x30"), _requests("error", "0+2x30")),
          # Half the requests fail, but two a minute is under the traffic floor.
          (_requests("stop", "0+1x30"), _requests("error", "0+1x30"))),
         true_from=1),
    Case("KvscaleRequestAborts", 10,
         (_requests("stop", "0+45x30"), _requests("abort", "0+15x30")),
         (Firing(MODEL_LABELS, "25% of the requests demo/tiny-llama finished were aborted (line 20%) for 10m: "
                               "clients time out or disconnect before the answer is done."),),
         ((_requests("stop", "0+50x30"), _requests("abort", "0+10x30")),),
         true_from=1),
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
    Case("KvscaleQueueFarAboveTarget", 15,
         (_vllm_series("kvscale_vllm_requests_waiting", "21x30"),),
         (Firing(MODEL_LABELS, "demo/tiny-llama has 21.0 requests waiting per pod, more than 4 times the target of "
                               "5, for 15m. The HPA is not adding replicas fast enough, is at its maximum, or its "
                               "new pods are not starting."),),
         # Flat at exactly 4x target, and far above on one pod while the other is empty (mean 10).
         ((_vllm_series("kvscale_vllm_requests_waiting", "20x30"),),
          (_vllm_series("kvscale_vllm_requests_waiting", "20x30"),
           (f'kvscale_vllm_requests_waiting{{{EXP}, namespace="demo", pod="vllm-b", model_name="tiny-llama"}}',
            "0x30")))),
    Case("KvscaleEngineStalled", 5,
         _engine("7x30", "30x30", "0x30"),
         (Firing(POD_LABELS, "demo/vllm-a (tiny-llama) holds 37 requests (running or waiting) and has generated no "
                             "token for 5m. The engine is hung (a stuck collective, a dead GPU, a deadlocked "
                             "scheduler); its latency series are absent because nothing finishes."),),
         # Busy and generating; idle with nothing to generate.
         (_engine("7x30", "30x30", "0.5x30"), _engine("0x30", "0x30", "0x30"))),
    Case("KvscaleModelDown", 5,
         (_vllm_series("kvscale_vllm_up", "0x30"), _other_pod("kvscale_vllm_up", "0x30")),
         (Firing(MODEL_LABELS, "No pod of demo/tiny-llama has answered on /metrics for 5m: every replica is down, "
                               "crash-looping or still loading. Clients of this model get errors."),),
         ((_vllm_series("kvscale_vllm_up", "0x30"), _other_pod("kvscale_vllm_up", "1x30")),)),
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
    Case("KvscaleGPUTemperatureHigh", 5,
         ((f"kvscale_gpu_temperature_celsius{{{EXP}, {GPU}}}", "86x30"), HOLDER),
         (Firing(GPU_LABELS, f"{GPU_TEXT} is at 86 °C, above 85 °C for 5m. Check the node's cooling and fans."),),
         (((f"kvscale_gpu_temperature_celsius{{{EXP}, {GPU}}}", "85x30"),),)),
    Case("KvscaleGPUUncorrectableECCErrors", 0,
         ((f'kvscale_gpu_ecc_errors_total{{{EXP}, {GPU}, {ECC_UNCORRECTED}}}', "_x16 1x19"), HOLDER,
          # Corrected errors are absorbed by the hardware: they never fire.
          (f'kvscale_gpu_ecc_errors_total{{{EXP}, {GPU}, error_type="corrected", counter_type="volatile"}}',
           "0+5x40")),
         (Firing({**GPU_LABELS, "error_type": "uncorrected", "counter_type": "volatile"},
                 f"{GPU_TEXT} counted 1 uncorrectable ECC errors in the last 10m. The processes on it may have "
                 "read corrupt memory; the GPU needs a reset and may need replacing."),),
         # Counted long ago, none since: quiet once they are older than the window.
         (((f'kvscale_gpu_ecc_errors_total{{{EXP}, {GPU}, {ECC_UNCORRECTED}}}', "3x40"),),),
         true_from=16, quiet_at=20, extra=((27, ()),)),
    Case("KvscaleGPUClocksThrottled", 10,
         ((f'kvscale_gpu_clock_event_active{{{EXP}, {GPU}, reason="hw_thermal_slowdown"}}', "1x30"), HOLDER),
         (Firing({**GPU_LABELS, "reason": "hw_thermal_slowdown"},
                 f"{GPU_TEXT} has been slowed by hw_thermal_slowdown for 10m. Tokens per second on it drop while "
                 "the reason holds."),),
         # The power cap holds at full load on a healthy GPU; a thermal slowdown that cleared.
         (((f'kvscale_gpu_clock_event_active{{{EXP}, {GPU}, reason="sw_power_cap"}}', "1x30"),),
          ((f'kvscale_gpu_clock_event_active{{{EXP}, {GPU}, reason="hw_thermal_slowdown"}}', "0x30"),))),
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
    Case("KvscaleExporterNoTargets", 10,
         ((f"up{{{EXP}}}", "1x30"),),
         (Firing({}, "1 kvscale exporters are scraped and none has watched a vLLM target for 10m: pod discovery "
                     "finds nothing (the exporter's pod selector or RBAC), or every model is scaled to zero."),),
         (((f"up{{{EXP}}}", "1x30"), _vllm_series("kvscale_vllm_up", "0x30")),)),
    # KEDA names the metric of the HPA it makes s0-<metric>: that HPA depends on the adapter too.
    Case("KvscaleAdapterAbsent", 5,
         (('up{job="kvscale-exporter", instance="10.0.0.1:9400"}', "1x30"),
          *_hpa_metric("s0-kvscale_vllm_requests_waiting")),
         (Firing({}, '1 HPA metrics read kvscale metrics, and Prometheus has had no healthy target matching '
                     '{job="kvscale-adapter"} for 5m.'),),
         ((('up{job="kvscale-adapter", instance="10.0.0.9:6443"}', "1x30"),
           *_hpa_metric("kvscale_vllm_requests_waiting")),
          # No HPA reads a kvscale metric (a cluster scaling with KEDA's Prometheus trigger): no adapter needed.
          (('up{job="kvscale-exporter", instance="10.0.0.1:9400"}', "1x30"), *_hpa_metric("s0-prometheus")))),
    Case("KvscaleAdapterStale", 5,
         ((f'kvscale_adapter_metric_freshness_seconds{{{ADAPTER}, source="http://10.0.0.1:9400"}}', "61x30"),),
         (Firing({"instance": "10.0.0.9:6443", "source": "http://10.0.0.1:9400"},
                 "Adapter 10.0.0.9:6443 last heard from http://10.0.0.1:9400 1m 1s ago (line 60s), for 5m. Pods "
                 "without fresh data are left out of its answers."),),
         (((f'kvscale_adapter_metric_freshness_seconds{{{ADAPTER}, source="http://10.0.0.1:9400"}}', "59x30"),),)),
    Case("KvscaleAdapterErrors", 5,
         ((f'kvscale_adapter_requests_total{{{ADAPTER}, route="custom", code="200"}}', "0+90x30"),
          (f'kvscale_adapter_requests_total{{{ADAPTER}, route="custom", code="503"}}', "0+10x30")),
         (Firing({"instance": "10.0.0.9:6443"},
                 "Adapter 10.0.0.9:6443 answered 10% of its requests with a server error (line 5%) for 5m."),),
         (((f'kvscale_adapter_requests_total{{{ADAPTER}, route="custom", code="200"}}', "0+96x30"),
           (f'kvscale_adapter_requests_total{{{ADAPTER}, route="custom", code="503"}}', "0+4x30")),
          # Unknown metrics (404) are the caller's mistake, not the adapter failing.
          ((f'kvscale_adapter_requests_total{{{ADAPTER}, route="custom", code="200"}}', "0+50x30"),
           (f'kvscale_adapter_requests_total{{{ADAPTER}, route="custom", code="404"}}', "0+50x30"))),
         true_from=1),
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
    Case("KvscaleHPAReplicasMismatch", 15,
         _hpa_replicas(6, 4, "kvscale_vllm_requests_waiting"),
         (Firing(HPA_LABELS, "HPA demo/vllm wants 6 replicas and has had another count, unchanged, for 15m: new "
                             "pods are Pending (no free GPU, quota) or failing to start."),),
         # At its desired count; short of it but scaling on CPU (kubernetes-mixin's alert covers that one).
         (_hpa_replicas(4, 4, "kvscale_vllm_requests_waiting"), _hpa_replicas(6, 4, "cpu"))),
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
