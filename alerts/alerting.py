"""Alerts on the vLLM serving path: KV cache, latency, queue, preemptions, rejections, targets.

Each alert is written against the exporter's kvscale_* families (names from the catalog)
with its line taken from the policy, so changing a threshold changes the rule.
Descriptions name the pod and say what the value means for users, for the on-call reader.
"""

from __future__ import annotations

from alerts.model import Alert, Group
from alerts.promql import duration, kvscale, number
from exporter.contract.catalog import QUANTILES
from exporter.contract.policy import Policy

# Alert names; the runbook headings in docs/runbooks.md and the dashboards' links use them.
KV_CACHE_NEARLY_FULL = "KvscaleKVCacheNearlyFull"
KV_FRAGMENTATION_HIGH = "KvscaleKVFragmentationHigh"
TTFT_OVER_SLO = "KvscaleTTFTOverSLO"
QUEUE_BACKLOG_GROWING = "KvscaleQueueBacklogGrowing"
PREEMPTIONS = "KvscalePreemptions"
ADMISSION_REJECTIONS_ALERT = "KvscaleAdmissionRejections"
VLLM_TARGET_DOWN = "KvscaleVLLMTargetDown"

_POD = "{{ $labels.namespace }}/{{ $labels.pod }} ({{ $labels.model_name }})"
_SLO_QUANTILE = 0.95
if _SLO_QUANTILE not in QUANTILES:
    raise ImportError(f"the TTFT SLO reads quantile {_SLO_QUANTILE}, which the exporter does not emit")


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


def _latency_and_queue(p: Policy) -> list[Alert]:
    ttft = kvscale("kvscale_vllm_ttft_seconds", p.exporter_selector, f'quantile="{number(_SLO_QUANTILE)}"')
    waiting = kvscale("kvscale_vllm_requests_waiting", p.exporter_selector)
    per_pod = f"avg by (namespace, model_name) ({waiting})"
    growth = f"deriv(namespace_model:kvscale_vllm_requests_waiting:sum[{duration(p.rate_window_seconds)}])"
    return [
        Alert(TTFT_OVER_SLO, f"{ttft} > {number(p.ttft_p95_slo_seconds)}",
              p.ttft_alert_for_seconds, "critical",
              "vLLM time to first token p95 is over its SLO; users are waiting for responses.",
              f"p95 time to first token of {_POD} is {{{{ $value | humanizeDuration }}}}, over the "
              f"{number(p.ttft_p95_slo_seconds)}s SLO for {duration(p.ttft_alert_for_seconds)}.",
              ttft),
        Alert(QUEUE_BACKLOG_GROWING,
              f"{per_pod} > {number(p.queue_target)}\nand on (namespace, model_name)\n{growth} > 0",
              p.queue_backlog_alert_for_seconds, "warning",
              "vLLM request queue is above target and still growing; scaling is not keeping up.",
              "{{ $labels.namespace }}/{{ $labels.model_name }} has {{ $value | printf \"%.1f\" }} requests "
              f"waiting per pod (target {number(p.queue_target)}) and the queue has kept growing for "
              f"{duration(p.queue_backlog_alert_for_seconds)}.",
              f"{per_pod}\nand on (namespace, model_name)\n{growth}"),
    ]


def _engine_health(p: Policy) -> list[Alert]:
    preempt = kvscale("kvscale_vllm_preemptions_per_second", p.exporter_selector)
    # The exporter's per-pod rate (all reasons): works without Prometheus scraping vLLM itself.
    rejections = kvscale("kvscale_vllm_admission_rejections_per_second", p.exporter_selector)
    up = kvscale("kvscale_vllm_up", p.exporter_selector)
    return [
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
    return Group("kvscale-vllm-alerts",
                 tuple(_kv_cache(p) + _latency_and_queue(p) + _engine_health(p)))
