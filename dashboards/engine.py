"""vLLM engine detail: one pod's batch, KV cache, latency, waste and the exporter reading it.

Reached from the fleet view with the pod variable set. Each section answers one
question: is the pod read at all, is it full, is it slow, is it wasting GPU time.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from alerts import alerting, platform, slo
from dashboards import common as c
from dashboards.panels import WARN, Line, PanelBuilder, Query, heatmap_panel, layout, timeseries_panel
from exporter.contract.catalog import Family
from exporter.contract.policy import Policy

UID = "kvscale-engine"

UP = c.metric("kvscale_vllm_up")
RUNNING = c.metric("kvscale_vllm_requests_running")
WAITING = c.metric("kvscale_vllm_requests_waiting")
KV = c.metric("kvscale_vllm_kv_cache_usage_ratio")
CAPACITY = c.metric("kvscale_vllm_kv_cache_capacity_tokens")
FRAGMENTATION = c.metric("kvscale_vllm_kv_cache_fragmentation_ratio")
PREFIX = c.metric("kvscale_vllm_prefix_cache_hit_ratio")
TTFT = c.metric("kvscale_vllm_ttft_seconds")
ITL = c.metric("kvscale_vllm_inter_token_latency_seconds")
E2E = c.metric("kvscale_vllm_e2e_latency_seconds")
QUEUE_TIME = c.metric("kvscale_vllm_queue_time_seconds")
PROMPT = c.metric("kvscale_vllm_prompt_tokens_per_second")
GENERATION = c.metric("kvscale_vllm_generation_tokens_per_second")
PREEMPTIONS = c.metric("kvscale_vllm_preemptions_per_second")
REJECTIONS = c.metric("kvscale_vllm_admission_rejections_per_second")
LATENCY_SOURCE = c.metric("kvscale_vllm_latency_source_info")
SCRAPE = c.metric("kvscale_exporter_target_scrape_duration_seconds")
COLLECTOR_OK = c.metric("kvscale_exporter_collector_success")
COLLECTOR_TIME = c.metric("kvscale_exporter_collector_duration_seconds")

SHOWN_QUANTILES = ("0.5", "0.95", "0.99")


def _quantiles(fam: Family, title: str, lines: list[Line], runbooks: list[str], span: int = 12) -> PanelBuilder:
    shown = "|".join(SHOWN_QUANTILES)
    return timeseries_panel(
        title, [Query(f'{fam.name}{{{c.VLLM}, quantile=~"{shown}"}}', "{{pod}} q{{quantile}}")],
        unit=c.unit(fam), lines=lines, runbooks=runbooks, span=span, description=fam.help)


def _health(t: Policy) -> list[PanelBuilder]:
    return [
        timeseries_panel(
            "vLLM target up", [Query(f"{UP.name}{{{c.VLLM}}}", c.legend(UP))], unit=c.unit(UP), max_val=1, span=8,
            runbooks=[alerting.VLLM_TARGET_DOWN],
            description="0 = the exporter could not scrape or read the pod's /metrics; its other series then "
                        "disappear rather than freeze. " + UP.help),
        timeseries_panel(
            "Exporter scrape of the pod", [Query(f"{SCRAPE.name}{{{c.POD}}}", "{{pod}}")], unit=c.unit(SCRAPE), span=8,
            runbooks=[platform.EXPORTER_DOWN, platform.EXPORTER_ABSENT], description=SCRAPE.help),
        timeseries_panel(
            "Exporter collectors", [Query(f"min by ({c.by('collector')}) ({COLLECTOR_OK.name}{{{c.IN_CLUSTER}}})",
                                          "{{collector}} ok"),
                                    Query(f"max by ({c.by('collector')}) ({COLLECTOR_TIME.name}{{{c.IN_CLUSTER}}})",
                                          "{{collector}} seconds")],
            unit="short", span=8, runbooks=[platform.EXPORTER_COLLECTOR_FAILING],
            description=COLLECTOR_OK.help + " " + COLLECTOR_TIME.help),
    ]


def _batch(t: Policy) -> list[PanelBuilder]:
    return [
        timeseries_panel(
            "Running and waiting requests",
            [Query(f"{RUNNING.name}{{{c.VLLM}}}", "{{pod}} running"),
             Query(f"{WAITING.name}{{{c.VLLM}}}", "{{pod}} waiting")],
            unit="short", lines=[Line(t.queue_target, WARN)],
            runbooks=[alerting.QUEUE_BACKLOG_GROWING, alerting.QUEUE_FAR_ABOVE_TARGET, alerting.ENGINE_STALLED],
            description=f"Dashed line: queue target per pod ({t.queue_target:g}). Waiting grows while running is "
                        "flat: the batch is limited by KV cache or max_num_seqs. Requests held while tokens per "
                        "second sits at 0: the engine is stalled. " + WAITING.help),
        timeseries_panel(
            "Finished requests by reason",
            [Query(f"sum by ({c.by('pod', 'finished_reason')}) "
                   f"(rate({c.vllm_series('request_success')}{{{c.VLLM}}}[$__rate_interval]))",
                   "{{pod}} {{finished_reason}}")],
            unit="reqps", stacked=True, runbooks=[slo.REQUEST_ERRORS, slo.REQUEST_ABORTS],
            description="Requests finished per second by finished_reason: stop and length are answers, abort a "
                        "client that gave up, error a failure. " + c.NEEDS_VLLM_SCRAPE),
        timeseries_panel(
            "Admission rejections per second",
            [Query(f"{REJECTIONS.name}{{{c.VLLM}}}", "{{pod}}")],
            unit=c.unit(REJECTIONS), runbooks=[alerting.ADMISSION_REJECTIONS_ALERT],
            description=REJECTIONS.help + " Any steady rate means clients see errors: scale out or raise the "
                                          "queue limit."),
    ]


def _kv(t: Policy) -> list[PanelBuilder]:
    return [
        timeseries_panel(
            "KV cache usage", [Query(f"{KV.name}{{{c.VLLM}}}", c.legend(KV))], unit=c.unit(KV), max_val=1,
            lines=[Line(t.kv_target, WARN), Line(t.kv_cache_usage_alert)],
            runbooks=[alerting.KV_CACHE_NEARLY_FULL], span=6,
            description=KV.help),
        timeseries_panel(
            "KV fragmentation (estimate)", [Query(f"{FRAGMENTATION.name}{{{c.VLLM}}}", "{{pod}}")],
            unit="percentunit", lines=[Line(t.kv_fragmentation_alert)],
            runbooks=[alerting.KV_FRAGMENTATION_HIGH], span=6,
            description=FRAGMENTATION.help),
        timeseries_panel(
            "KV cache capacity", [Query(f"{CAPACITY.name}{{{c.VLLM}}}", c.legend(CAPACITY))],
            unit=c.unit(CAPACITY), span=6,
            description=CAPACITY.help + " Drops after a restart mean less GPU memory was free at start-up."),
        timeseries_panel(
            "Prefix cache hit ratio", [Query(f"{PREFIX.name}{{{c.VLLM}}}", c.legend(PREFIX))], unit=c.unit(PREFIX),
            max_val=1, span=6, description=PREFIX.help),
    ]


def _latency(t: Policy) -> list[PanelBuilder]:
    ttft_vllm = (f"histogram_quantile(0.95, sum by ({c.by('le', 'pod')}) (rate({c.VLLM_TTFT_BUCKET}{{{c.VLLM}}}"
                 "[$__rate_interval])))")
    return [
        _quantiles(TTFT, "Time to first token", [Line(t.ttft_p95_slo_seconds)], [slo.TTFT_OVER_SLO]),
        timeseries_panel(
            "TTFT p95: exporter vs Prometheus",
            [Query(f'{TTFT.name}{{{c.VLLM}, quantile="0.95"}}', "{{pod}} exporter"),
             Query(ttft_vllm, "{{pod}} histogram_quantile")],
            unit="s", lines=[Line(t.ttft_p95_slo_seconds)], runbooks=[slo.TTFT_OVER_SLO],
            description="The exporter's windowed p95 next to histogram_quantile over vLLM's buckets; they should "
                        "agree within the window difference. A gap means the exporter reads a stale target. "
                        "The histogram_quantile line " + c.NEEDS_VLLM_SCRAPE[0].lower() + c.NEEDS_VLLM_SCRAPE[1:]),
        _quantiles(ITL, "Inter-token latency", [Line(t.itl_p95_slo_seconds)], [slo.ITL_OVER_SLO], span=8),
        _quantiles(E2E, "End-to-end latency", [Line(t.e2e_p95_slo_seconds)], [slo.E2E_OVER_SLO], span=8),
        _quantiles(QUEUE_TIME, "Queue time", [], [alerting.QUEUE_BACKLOG_GROWING], span=8),
    ]


def _throughput(t: Policy) -> list[PanelBuilder]:
    return [
        timeseries_panel(
            "Tokens per second",
            [Query(f"{PROMPT.name}{{{c.VLLM}}}", "{{pod}} prompt"),
             Query(f"{GENERATION.name}{{{c.VLLM}}}", "{{pod}} generation")],
            unit="short", runbooks=[alerting.ENGINE_STALLED],
            description=PROMPT.help + " " + GENERATION.help + " Generation at 0 while requests run: the engine is "
                                                              "stalled."),
        timeseries_panel(
            "Preemptions per second", [Query(f"{PREEMPTIONS.name}{{{c.VLLM}}}", c.legend(PREEMPTIONS))],
            unit=c.unit(PREEMPTIONS),
            lines=[Line(t.preemptions_per_second_alert)], runbooks=[alerting.PREEMPTIONS],
            description="Each preemption throws away a request's KV and recomputes it. " + PREEMPTIONS.help),
    ]


def _mean_time(short: str) -> str:
    name = c.vllm_series(short)
    return (f"sum by ({c.by('pod')}) (rate({name}_sum{{{c.VLLM}}}[$__rate_interval]))\n/\n"
            f"sum by ({c.by('pod')}) (rate({name}_count{{{c.VLLM}}}[$__rate_interval]))")


def _requests(t: Policy) -> list[PanelBuilder]:
    def length(short: str) -> str:
        return (f"sum by ({c.by('le')}) (increase({c.vllm_series(short, '_bucket')}{{{c.VLLM}}}"
                "[$__rate_interval]))")

    return [
        timeseries_panel(
            "Prefill vs decode time per request",
            [Query(_mean_time("prefill_time"), "{{pod}} prefill"), Query(_mean_time("decode_time"), "{{pod}} decode")],
            unit="s", span=8,
            description="Mean seconds a request spends in prefill (reading its prompt) and in decode (writing its "
                        "answer). Prefill growing: long prompts or a cold prefix cache; decode growing: a full batch "
                        "or long outputs. " + c.NEEDS_VLLM_SCRAPE),
        heatmap_panel(
            "Prompt length", Query(length("prompt_length")), unit="short", span=8,
            description="Prompt tokens per finished request, one row per histogram bucket: the shift that explains "
                        "a TTFT change. " + c.NEEDS_VLLM_SCRAPE),
        heatmap_panel(
            "Generation length", Query(length("generation_length")), unit="short", span=8,
            description="Output tokens per finished request, one row per histogram bucket: the shift that explains "
                        "an end-to-end latency change. " + c.NEEDS_VLLM_SCRAPE),
    ]


def _sources(t: Policy) -> list[PanelBuilder]:
    """Last, so that the panel ids alerts link to (alerts/dashboard_links.py) do not move."""
    return [timeseries_panel(
        "Latency quantile source: plugin (exact) or histogram (interpolated)",
        [Query(f"{LATENCY_SOURCE.name}{{{c.VLLM}}}", "{{pod}} {{latency}}: {{source}}")],
        unit="none", span=24, height=5, description=LATENCY_SOURCE.help)]


def build(thresholds: Policy) -> db.Dashboard:
    dash = c.new_dashboard(UID, "kvscale / vLLM engine",
                           "One vLLM pod in detail: batch, KV cache, latency quantiles, waste, and its exporter.")
    sections = (("Health", _health), ("Batch and queue", _batch), ("KV cache", _kv), ("Latency", _latency),
                ("Requests (from vLLM's own series)", _requests), ("Throughput and waste", _throughput),
                ("Sources", _sources))
    dash = layout(dash, [(title, panels(thresholds)) for title, panels in sections])
    return dash
