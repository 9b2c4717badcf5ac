"""The stat logger vLLM's frontend loads through the ``vllm.stat_logger_plugins`` entry point.

An ``AggregateStatLoggerBase``: one instance sees every data-parallel engine (a plain
``StatLoggerBase`` would get one instance per engine). vLLM builds it in ``AsyncLLM.__init__``
(the API-server process; offline ``LLMEngine`` loads no plugins) and calls ``record`` from
its output handler for each ``EngineCoreOutputs``: here it only appends to bounded windows
(:mod:`exporter.vllm_plugin.window`); quantiles are computed when /metrics is scraped.

It never raises into vLLM: a failing call is counted (``kvscale_engine_plugin_faults_total``),
its first failure of each kind is logged with the cause, and vLLM keeps serving. A plugin
makes vLLM log stats even under ``--disable-log-stats``. With ``--api-server-count > 1``
vLLM's /metrics reads a multiprocess registry that custom collectors do not reach, and the
scheduler sends stats to one front end only: the plugin's series are then absent and the
exporter uses the histograms. Settings: ``KVSCALE_ENGINE_WINDOW_SECONDS`` (default 60, the
exporter's window) and ``KVSCALE_ENGINE_WINDOW_CAPACITY`` (values kept per latency).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from prometheus_client import REGISTRY
from vllm.v1.metrics.loggers import AggregateStatLoggerBase

from exporter.vllm_plugin.families import DEFAULT_CAPACITY, DEFAULT_SECONDS, Windows, WindowsCollector

log = logging.getLogger(__name__)

_REGISTERED: dict[str, WindowsCollector] = {}
"""The collector on vLLM's registry: a new logger (a restarted engine client) replaces it."""


def _setting(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        value = float(raw) if raw else default
    except ValueError:
        log.warning("kvscale plugin: %s=%r is not a number, using %s", name, raw, default)
        return default
    return value if value > 0 else default


class KvscaleStatLogger(AggregateStatLoggerBase):  # type: ignore[misc]  # vLLM is untyped here (not installed)
    """Exact windowed latency quantiles and peak KV usage, from the raw values vLLM hands stat loggers."""

    def __init__(self, vllm_config: Any, engine_indexes: list[int] | None = None) -> None:
        names = getattr(vllm_config.model_config, "served_model_name", None) or vllm_config.model_config.model
        model = names[0] if isinstance(names, (list, tuple)) else str(names)
        self.windows = Windows(model, seconds=_setting("KVSCALE_ENGINE_WINDOW_SECONDS", DEFAULT_SECONDS),
                               capacity=int(_setting("KVSCALE_ENGINE_WINDOW_CAPACITY", DEFAULT_CAPACITY)))
        self.windows.engines(engine_indexes or [0])
        self._failed: set[str] = set()
        self.collector = collector = WindowsCollector(self.windows)
        previous = _REGISTERED.pop("collector", None)
        if previous is not None:
            REGISTRY.unregister(previous)
        REGISTRY.register(collector)
        _REGISTERED["collector"] = collector

    def record(self, scheduler_stats: Any, iteration_stats: Any, mm_cache_stats: Any = None,
               engine_idx: int = 0) -> None:
        try:
            w = self.windows
            now = time.monotonic()
            if scheduler_stats is not None:
                peak = w.kv_peaks.get(engine_idx)
                if peak is None:
                    w.engines([engine_idx])
                    peak = w.kv_peaks[engine_idx]
                peak.add(now, scheduler_stats.kv_cache_usage)
            if iteration_stats is None:
                return
            lat = w.latencies
            lat["ttft"].add(now, iteration_stats.time_to_first_tokens_iter)
            lat["itl"].add(now, iteration_stats.inter_token_latencies_iter)
            finished = iteration_stats.finished_requests
            if finished:
                lat["e2e"].add(now, [r.e2e_latency for r in finished])
                lat["queue"].add(now, [r.queued_time for r in finished])
        except Exception as exc:  # vLLM's output loop must never see the plugin fail
            self._fault("record", exc)

    def _fault(self, where: str, exc: Exception) -> None:
        self.windows.faults += 1
        kind = f"{where}:{type(exc).__name__}"
        if kind not in self._failed:
            self._failed.add(kind)
            log.warning("kvscale plugin: %s failed (%s: %s); skipped, counted in kvscale_engine_plugin_faults_total,"
                        " logged once per kind", where, type(exc).__name__, exc)

    def log_engine_initialized(self) -> None:
        pass

    def log(self) -> None:
        pass
