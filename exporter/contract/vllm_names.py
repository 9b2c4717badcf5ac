"""vLLM's metric names across versions: the one table the reader, the alerts and the adapter's PromQL use.

Each canonical short name maps to the exposition family names that carried it, newest
first: when a version emits both, the newest wins. Names are written without their
prefix; vLLM writes ``vllm:`` and prometheus_client >= 0.23 rewrites it to ``vllm_``
when OpenMetrics is negotiated (client_python #1177), so readers accept both.
Sources: ../shared/reference/vllm-metrics.md (renames through 0.33).
"""

from __future__ import annotations

# Canonical short name -> exposition family names, newest first.
GAUGES: dict[str, tuple[str, ...]] = {
    "running": ("num_requests_running",),
    "waiting": ("num_requests_waiting",),
    "kv_usage": ("kv_cache_usage_perc", "gpu_cache_usage_perc"),
}
COUNTERS: dict[str, tuple[str, ...]] = {
    "prompt_tokens": ("prompt_tokens_total",),
    "generation_tokens": ("generation_tokens_total",),
    "preemptions": ("num_preemptions_total",),
    "prefix_queries": ("prefix_cache_queries_total", "gpu_prefix_cache_queries_total"),
    "prefix_hits": ("prefix_cache_hits_total", "gpu_prefix_cache_hits_total"),
    # Frontend counter: no engine label, one series per reason (summed here).
    "admission_rejections": ("admission_rejections_total",),
}
HISTOGRAMS: dict[str, tuple[str, ...]] = {
    "ttft": ("time_to_first_token_seconds",),
    "itl": ("inter_token_latency_seconds", "time_per_output_token_seconds"),
    "e2e": ("e2e_request_latency_seconds",),
    "queue": ("request_queue_time_seconds",),
}
PREFIXES = ("vllm:", "vllm_")
# Read only by the rules and dashboards, from Prometheus scraping vLLM itself (the exporter does not read
# them): request outcomes by finished_reason (a counter), and per-request histograms.
DIRECT: dict[str, tuple[str, ...]] = {
    "request_success": ("request_success_total",),
    "prefill_time": ("request_prefill_time_seconds",),
    "decode_time": ("request_decode_time_seconds",),
    "prompt_length": ("request_prompt_tokens",),
    "generation_length": ("request_generation_tokens",),
}

# Series kvscale's stat-logger plugin (exporter.vllm_plugin, installed into vLLM with kvscale[vllm]) adds to
# vLLM's own /metrics: exact quantiles of the raw per-request values over a sliding window, keyed by the
# short name of the histogram they replace, and the peak KV usage of each engine's steps over that window.
ENGINE_QUANTILES: dict[str, str] = {
    "ttft": "kvscale_engine_ttft_seconds",
    "itl": "kvscale_engine_inter_token_latency_seconds",
    "e2e": "kvscale_engine_e2e_latency_seconds",
    "queue": "kvscale_engine_queue_time_seconds",
}
ENGINE_OBSERVATIONS = "kvscale_engine_window_observations"
"""Values in the plugin's window, per ``latency`` (a short name above): present means the plugin is the source."""
ENGINE_WINDOW = "kvscale_engine_window_seconds"
ENGINE_KV_PEAK = "kvscale_engine_kv_cache_usage_peak_ratio"
ENGINE_FAULTS = "kvscale_engine_plugin_faults_total"
