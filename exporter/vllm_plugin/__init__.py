"""kvscale's vLLM stat-logger plugin: exact windowed latency quantiles and peak KV usage on vLLM's /metrics.

vLLM reports latency only as histograms; near an SLO its bucket layout decides the
interpolated quantile (TTFT buckets 0.75 and 1.0 s around a 0.8 s SLO). Installed into the
vLLM image (``pip install kvscale[vllm]``), vLLM's frontend loads :class:`logger.KvscaleStatLogger`
through the ``vllm.stat_logger_plugins`` entry point; it sees every request's raw TTFT,
inter-token latency, end-to-end latency and queue time, and every engine step's KV usage,
keeps them in fixed-size sliding windows (:mod:`window`) and serves exact quantiles under
``kvscale_engine_*`` names (:mod:`families`) on vLLM's own registry. The exporter prefers
these series and falls back to the histograms without them.

Only :mod:`logger` imports vLLM; the rest is stdlib and prometheus_client (both already
in every vLLM image), so nothing here pulls aiohttp, kubernetes or gRPC into vLLM.
"""
