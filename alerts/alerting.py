"""Alerts on the vLLM serving path: KV cache, latency, queue, preemptions, rejections, targets.

Each alert is written against the exporter's kvscale_* families (names from the catalog)
with its line taken from the policy, so changing a threshold changes the rule.
Descriptions name the pod and say what the value means for users, for the on-call reader.
"""

from __future__ import annotations

from alerts.model import Alert, Group
from alerts.promql import duration, kvscale, number
from alerts.recording import model_labels, pod_labels
from alerts.slo import slo_alerts
from exporter.contract.policy import Policy

# Alert names; the runbook headings in docs/runbooks.md and the dashboards' links use them.
KV_CACHE_NEARLY_FULL = "KvscaleKVCacheNearlyFull"
KV_FRAGMENTATION_HIGH = "KvscaleKVFragmentationHigh"
QUEUE_BACKLOG_GROWING = "KvscaleQueueBacklogGrowing"
QUEUE_FAR_ABOVE_TARGET = "KvscaleQueueFarAboveTarget"
ENGINE_STALLED = "KvscaleEngineStalled"
MODEL_DOWN = "KvscaleModelDown"
PREEMPTIONS = "KvscalePreemptions"
ADMISSION_REJECTIONS_ALERT = "KvscaleAdmissionRejections"
VLLM_TARGET_DOWN = "KvscaleVLLMTargetDown"

_POD = "{{ $labels.namespace }}/{{ $labels.pod }} ({{ $labels.model_name }})"
_MODEL = "{{ $labels.namespace }}/{{ $labels.model_name }}"


def _percent(ratio: float) -> str:
    return f"{ratio * 100:g}%"


def _kv_cache(p: Policy) -> list[Alert]:
    exp = p.exporter_selector
    usage = kvscale("kvscale_vllm_kv_cache_usage_ratio", exp)
    frag = kvscale("kvscale_vllm_kv_cache_fragmentation_ratio", exp)
    return [
        Alert(KV_CACHE_NEARLY_FULL, f"{usage} > {number(p.kv_cache_usage_alert)}",
              p.kv_cache_usage_alert_for_seconds, "warning",
              "vLLM KV cache is nearly full; requests will be preempted and TTFT will rise.",
              f"The KV cache of {_POD} is {{{{ $value | humanizePercentage }}}} full, above "
              f"{_percent(p.kv_cache_usage_alert)} for {duration(p.kv_cache_usage_alert_for_seconds)}. "
              "New requests wait for blocks and running ones get preempted.",
              usage),
        Alert(KV_FRAGMENTATION_HIGH, f"{frag} > {number(p.kv_fragmentation_alert)}",
              p.kv_fragmentation_alert_for_seconds, "info",
              "vLLM KV cache fragmentation (estimated) is high; capacity is being wasted.",
              f"An estimated {{{{ $value | humanizePercentage }}}} of the KV slots in use by {_POD} are "
              f"allocated but unfilled (line {_percent(p.kv_fragmentation_alert)}). "
              "The pod fills up and preempts earlier than its capacity suggests.",
              frag),
    ]


def _queue(p: Policy) -> list[Alert]:
    waiting = kvscale("kvscale_vllm_requests_waiting", p.exporter_selector)
    per_pod = f"avg by ({model_labels(p)}) ({waiting})"
    growth = f"deriv(namespace_model:kvscale_vllm_requests_waiting:sum[{duration(p.rate_window_seconds)}])"
    on_model = f"and on ({model_labels(p)})"
    factor, target = number(p.queue_far_above_target_factor), number(p.queue_target)
    return [
        Alert(QUEUE_BACKLOG_GROWING,
              f"{per_pod} > {target}\n{on_model}\n{growth} > 0",
              p.queue_backlog_alert_for_seconds, "warning",
              "vLLM request queue is above target and still growing; scaling is not keeping up.",
              f"{_MODEL} has {{{{ $value | printf \"%.1f\" }}}} requests "
              f"waiting per pod (target {target}) and the queue has kept growing for "
              f"{duration(p.queue_backlog_alert_for_seconds)}.",
              f"{per_pod}\n{on_model}\n{growth}"),
        # However flat: a queue parked far above target is demand the fleet does not serve.
        Alert(QUEUE_FAR_ABOVE_TARGET, f"{per_pod} > {factor} * {target}",
              p.queue_far_above_target_for_seconds, p.queue_far_above_target_severity,
              "vLLM request queue has stayed far above target; the fleet is short of replicas.",
              f"{_MODEL} has {{{{ $value | printf \"%.1f\" }}}} requests waiting per pod, more than "
              f"{factor} times the target of {target}, for {duration(p.queue_far_above_target_for_seconds)}. "
              "The HPA is not adding replicas fast enough, is at its maximum, or its new pods are not starting.",
              per_pod),
    ]


def _engine_health(p: Policy) -> list[Alert]:
    preempt = kvscale("kvscale_vllm_preemptions_per_second", p.exporter_selector)
    # The exporter's per-pod rate (all reasons): works without Prometheus scraping vLLM itself.
    rejections = kvscale("kvscale_vllm_admission_rejections_per_second", p.exporter_selector)
    up = kvscale("kvscale_vllm_up", p.exporter_selector)
    in_flight = (f"({kvscale('kvscale_vllm_requests_running', p.exporter_selector)} + "
                 f"{kvscale('kvscale_vllm_requests_waiting', p.exporter_selector)})")
    tokens = kvscale("kvscale_vllm_generation_tokens_per_second", p.exporter_selector)
    on_pod = f"and on ({pod_labels(p)})"
    model_up = f"max by ({model_labels(p)}) ({up})"
    return [
        # TTFT is absent while nothing finishes prefill, so a hung engine trips no latency alert: this one.
        Alert(ENGINE_STALLED, f"{in_flight} > 0\n{on_pod}\n{tokens} == 0",
              p.engine_stalled_for_seconds, p.engine_stalled_severity,
              "A vLLM engine holds requests but generates no tokens; its requests hang.",
              f"{_POD} holds {{{{ $value }}}} requests (running or waiting) and has generated no token for "
              f"{duration(p.engine_stalled_for_seconds)}. The engine is hung (a stuck collective, a dead GPU, "
              "a deadlocked scheduler); its latency series are absent because nothing finishes.",
              f"{in_flight}\n{on_pod}\n{tokens}"),
        Alert(MODEL_DOWN, f"{model_up} == 0", p.model_down_for_seconds, p.model_down_severity,
              "Every replica of a model is down; the model serves no request.",
              f"No pod of {_MODEL} has answered on /metrics for {duration(p.model_down_for_seconds)}: every "
              "replica is down, crash-looping or still loading. Clients of this model get errors.",
              model_up),
        Alert(PREEMPTIONS, f"{preempt} > {number(p.preemptions_per_second_alert)}",
              p.preemptions_alert_for_seconds, "warning",
              "vLLM is preempting requests; KV cache pressure is wasting GPU time.",
              f"{_POD} preempts {{{{ $value | printf \"%.2f\" }}}} requests per second (line "
              f"{number(p.preemptions_per_second_alert)}/s) for {duration(p.preemptions_alert_for_seconds)}; "
              "each preemption recomputes a request's KV cache.",
              preempt),
        Alert(ADMISSION_REJECTIONS_ALERT, f"{rejections} > {number(p.admission_rejections_per_second_alert)}",
              p.admission_rejections_for_seconds, "warning",
              "vLLM is rejecting requests at admission; clients are getting errors.",
              f"{_POD} rejects {{{{ $value | printf \"%.2f\" }}}} requests per second at admission "
              f"(a queue limit reached), for {duration(p.admission_rejections_for_seconds)}.",
              rejections),
        Alert(VLLM_TARGET_DOWN, f"{up} == 0", p.target_down_for_seconds, "warning",
              "The exporter cannot read a vLLM pod's metrics; the pod is invisible to autoscaling.",
              f"The exporter has not read /metrics of {_POD} for {duration(p.target_down_for_seconds)}: "
              "the engine is down, hung or still loading. Its kvscale series are gone, so the HPA "
              "treats the pod as missing.",
              up),
    ]


def vllm_alerts(p: Policy) -> Group:
    return Group("kvscale-vllm-alerts", tuple(_kv_cache(p) + slo_alerts(p) + _queue(p) + _engine_health(p)))
