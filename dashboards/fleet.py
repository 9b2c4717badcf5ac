"""Fleet overview: is the model serving fleet keeping up, and what does it cost?

The first screen on call: replicas against what the HPA wants, how full the pods are
against policy, queue, KV cache, TTFT against the SLO, throughput and cost.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from alerts import alerting, platform, slo
from dashboards import common as c
from dashboards.panels import BAD, OK, WARN, Line, PanelBuilder, Query, layout, stat_panel, timeseries_panel
from exporter.contract.policy import Policy

UID = "kvscale-fleet"

UP = c.metric("kvscale_vllm_up")
SATURATION = c.metric("kvscale_vllm_saturation_ratio")
WAITING = c.metric("kvscale_vllm_requests_waiting")
KV = c.metric("kvscale_vllm_kv_cache_usage_ratio")
TTFT = c.metric("kvscale_vllm_ttft_seconds")
PROMPT = c.metric("kvscale_vllm_prompt_tokens_per_second")
GENERATION = c.metric("kvscale_vllm_generation_tokens_per_second")
COST = c.metric("kvscale_vllm_cost_per_million_tokens_dollars")

TOKENS = f"({PROMPT.name}{{{c.VLLM}}} + {GENERATION.name}{{{c.VLLM}}})"
# Fleet cost per 1M tokens is the token-weighted mean of the pods' costs, not their average.
FLEET_COST = f"sum({COST.name}{{{c.VLLM}}} * {TOKENS}) / sum({TOKENS})"
VLLM_TTFT_FLEET = (f"histogram_quantile(0.95, sum by ({c.by('le')}) (rate({c.VLLM_TTFT_BUCKET}{{{c.VLLM}}}"
                   "[$__rate_interval])))")
REQUESTS = c.vllm_series("request_success")
MODEL_UP = f"max by ({c.by('namespace', 'model_name')}) ({UP.name}{{{c.VLLM}}})"


def _quantile(q: str) -> str:
    return f'max({TTFT.name}{{{c.VLLM}, quantile="{q}"}})'


def _glance(t: Policy) -> list[PanelBuilder]:
    return [
        stat_panel("Pods serving", Query(f"sum({UP.name}{{{c.VLLM}}})"), unit="short", base=BAD,
                   lines=[Line(1, OK)], runbooks=[alerting.VLLM_TARGET_DOWN, platform.EXPORTER_NO_TARGETS],
                   description="vLLM pods whose /metrics the exporter read in its last collection; no data: the "
                               "exporters watch no vLLM pod at all. " + UP.help),
        stat_panel("Models with no replica serving",
                   Query(f"({MODEL_UP} == 0) or on () vector(0)", "{{namespace}}/{{model_name}}"),
                   unit="short", lines=[Line(0.5, BAD)], runbooks=[alerting.MODEL_DOWN], text_mode="value_and_name",
                   description="0 when every model has a pod serving; otherwise one red tile per model whose pods "
                               "are all down (value 0 = no pod up), named namespace/model."),
        stat_panel("Worst saturation", Query(f"max({SATURATION.name}{{{c.VLLM}}})"), unit=c.unit(SATURATION),
                   lines=[Line(1.0, WARN)], runbooks=[platform.HPA_MAXED_OUT_SATURATED],
                   description="The fullest pod against policy; 100% = at target, the HPA should be adding "
                               "replicas. " + SATURATION.help),
        stat_panel("Waiting per pod", Query(f"avg({WAITING.name}{{{c.VLLM}}})"), unit=c.unit(WAITING), decimals=1,
                   lines=[Line(t.queue_target, WARN)],
                   runbooks=[alerting.QUEUE_FAR_ABOVE_TARGET, alerting.QUEUE_BACKLOG_GROWING],
                   description=f"Mean queue depth per pod; the HPA aims for {t.queue_target:g}. " + WAITING.help),
        stat_panel("Fullest KV cache", Query(f"max({KV.name}{{{c.VLLM}}})"), unit=c.unit(KV),
                   lines=[Line(t.kv_target, WARN), Line(t.kv_cache_usage_alert, BAD)],
                   runbooks=[alerting.KV_CACHE_NEARLY_FULL],
                   description=f"Highest KV-cache usage of any pod; scaling target {t.kv_target:.0%}, alert above "
                               f"{t.kv_cache_usage_alert:.0%}. " + KV.help),
        stat_panel("Worst TTFT p95", Query(_quantile("0.95")), unit=c.unit(TTFT),
                   lines=[Line(t.ttft_p95_slo_seconds, BAD)], runbooks=[slo.TTFT_OVER_SLO],
                   description=f"Slowest pod's time-to-first-token p95; SLO {t.ttft_p95_slo_seconds:g} s. "
                               + TTFT.help),
        stat_panel("Cost per 1M tokens", Query(FLEET_COST), unit="currencyUSD", decimals=2,
                   description="Token-weighted fleet cost of a million prompt + output tokens. " + COST.help),
    ]


def _replicas(t: Policy) -> list[PanelBuilder]:
    hpa = 'horizontalpodautoscaler'
    return [
        timeseries_panel(
            "Replicas: current vs desired",
            [Query(f"{c.KSM_HPA_CURRENT}{{{c.ksm(t)}}}", f"{{{{{hpa}}}}} current"),
             Query(f"{c.KSM_HPA_DESIRED}{{{c.ksm(t)}}}", f"{{{{{hpa}}}}} desired"),
             Query(f"{c.KSM_HPA_MAX}{{{c.ksm(t)}}}", f"{{{{{hpa}}}}} max"),
             Query(f"count by ({c.by('namespace')}) ({UP.name}{{{c.VLLM}}} == 1)", "{{namespace}} pods serving")],
            unit="short", runbooks=[platform.HPA_MAXED_OUT_SATURATED, platform.HPA_METRICS_UNAVAILABLE],
            description="What the HPA runs, what it wants, and its ceiling (kube-state-metrics), next to the pods "
                        "actually serving. Desired above current for long: pods are not starting (GPU quota, "
                        "image pull, model load). Current at max while saturated: raise maxReplicas or add GPUs."),
        timeseries_panel(
            "Saturation per pod", [Query(f"{SATURATION.name}{{{c.VLLM}}}", "{{pod}}")],
            drilldown=True, unit="percentunit", lines=[Line(1.0, WARN)], runbooks=[platform.HPA_MAXED_OUT_SATURATED],
            description="1 (100%) = at the scaling target on the worst of KV usage, queue and TTFT. "
                        + SATURATION.help),
    ]


def _load(t: Policy) -> list[PanelBuilder]:
    return [
        timeseries_panel(
            "Pods serving per model", [Query(f"sum by ({c.by('namespace', 'model_name')}) ({UP.name}{{{c.VLLM}}})",
                                             "{{namespace}}/{{model_name}}")],
            unit="short", runbooks=[alerting.MODEL_DOWN, alerting.VLLM_TARGET_DOWN], span=8,
            description="Pods of each model the exporter read. A model at 0 serves nothing: every replica is "
                        "down, crash-looping or loading."),
        timeseries_panel(
            "Finished requests by reason",
            [Query(f"sum by ({c.by('finished_reason')}) (rate({REQUESTS}{{{c.VLLM}}}[$__rate_interval]))",
                   "{{finished_reason}}")],
            unit="reqps", stacked=True, span=16, runbooks=[slo.REQUEST_ERRORS, slo.REQUEST_ABORTS],
            description="Requests vLLM finished per second by finished_reason: stop and length are answers, "
                        "abort is a client that gave up or disconnected, error is a failure. " + c.NEEDS_VLLM_SCRAPE),
        timeseries_panel(
            "Requests waiting per pod", [Query(f"{WAITING.name}{{{c.VLLM}}}", "{{pod}}")],
            drilldown=True, unit="short", lines=[Line(t.queue_target, WARN)],
            runbooks=[alerting.QUEUE_FAR_ABOVE_TARGET, alerting.QUEUE_BACKLOG_GROWING],
            description=f"Dashed line: the HPA's queue target ({t.queue_target:g}). " + WAITING.help),
        timeseries_panel(
            "KV cache usage per pod", [Query(f"{KV.name}{{{c.VLLM}}}", "{{pod}}")],
            drilldown=True, unit="percentunit", max_val=1, runbooks=[alerting.KV_CACHE_NEARLY_FULL],
            lines=[Line(t.kv_target, WARN), Line(t.kv_cache_usage_alert, BAD)],
            description=f"Orange: scaling target ({t.kv_target:.0%}); red: alert ({t.kv_cache_usage_alert:.0%}), past "
                        "which vLLM preempts requests. " + KV.help),
    ]


def _latency_cost(t: Policy) -> list[PanelBuilder]:
    return [
        timeseries_panel(
            "TTFT (worst pod) and fleet p95",
            [Query(_quantile("0.5"), "p50 worst pod"), Query(_quantile("0.95"), "p95 worst pod"),
             Query(_quantile("0.99"), "p99 worst pod"), Query(VLLM_TTFT_FLEET, "p95 fleet (vLLM histograms)")],
            unit="s", lines=[Line(t.ttft_p95_slo_seconds, BAD)], runbooks=[slo.TTFT_OVER_SLO],
            description=f"Red line: TTFT p95 SLO ({t.ttft_p95_slo_seconds:g} s). Per-pod quantiles come from the "
                        "exporter's sliding window; the fleet p95 is histogram_quantile over vLLM's own buckets. "
                        "The fleet line " + c.NEEDS_VLLM_SCRAPE[0].lower() + c.NEEDS_VLLM_SCRAPE[1:]),
        timeseries_panel(
            "Tokens per second",
            [Query(f"sum({PROMPT.name}{{{c.VLLM}}})", "prompt"),
             Query(f"sum({GENERATION.name}{{{c.VLLM}}})", "generation")],
            unit="short", stacked=True, span=6,
            description="Fleet throughput. " + PROMPT.help + " " + GENERATION.help),
        timeseries_panel(
            "Cost per 1M tokens",
            [Query(FLEET_COST, "fleet"), Query(f"{COST.name}{{{c.VLLM}}}", "{{pod}}")],
            unit="currencyUSD", span=6,
            description="Fleet line is token-weighted. A pod far above the fleet is idle GPU time. " + COST.help),
    ]


def build(thresholds: Policy) -> db.Dashboard:
    dash = c.new_dashboard(UID, "kvscale / Fleet overview",
                           "Is the vLLM fleet keeping up with demand, and at what cost per token?")
    sections = (("At a glance", _glance), ("Replicas and saturation", _replicas), ("Queue and KV cache", _load),
                ("Latency, throughput and cost", _latency_cost))
    dash = layout(dash, [(title, panels(thresholds)) for title, panels in sections])
    return dash
