"""The exporter process: wire the collectors, run the collection cycle, serve HTTP.

Collection runs on a fixed clock (the window needs regular observations) and each
cycle renders the exposition once; ``/metrics`` serves those bytes, so a scrape
costs no collection work and 20 concurrent scrapers cost what one does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor

import aiohttp
from aiohttp import web

from exporter import __version__
from exporter.collector import Collector, CollectorRun, CycleContext, Series, health_series, run_collector
from exporter.contract.connection import PLAIN_TEXT, ConnectionLimits
from exporter.contract.errorlog import QuietExceptionHandler
from exporter.contract.listener import Listener
from exporter.render import CONTENT_TYPE, SnapshotCollector, new_registry, render
from exporter.settings import Settings
from exporter.vllm.collector import VllmCollector
from exporter.vllm.limits import TargetLimits
from exporter.vllm.series import VllmPolicy
from exporter.vllm.targets import StaticTargets, TargetError, TargetSource, parse_static, unique

log = logging.getLogger(__name__)

# What one scraper's request may make the exporter buffer (Prometheus sends well under 1 kB of headers).
HTTP_MAX_LINE_BYTES, HTTP_MAX_FIELD_BYTES, HTTP_MAX_HEADERS = 4096, 4096, 32
HTTP_MAX_HEADER_BYTES = 32 * 1024


class SetupError(Exception):
    """The exporter cannot start with these settings; raised before the port is bound."""


class Exporter:
    """Collectors + the cycle + the rendered snapshot."""

    def __init__(self, *, settings: Settings, vllm: VllmCollector, others: Sequence[Collector] = (),
                 ready_check: Callable[[], bool] | None = None, clock: Callable[[], float] = time.monotonic,
                 cpu: Executor | None = None) -> None:
        self.settings = settings
        self.vllm = vllm
        self.others = tuple(others)
        self._snapshot = SnapshotCollector()
        self._registry = new_registry(self._snapshot)
        self.body = b""
        self.cycles = 0
        self.failed_cycles = 0
        self.started_at = time.monotonic()
        self.last_cycle_at: float | None = None
        self._ready_check = ready_check
        self._clock = clock
        self._cpu = cpu

    async def run_cycle(self) -> list[Series]:
        ctx = CycleContext(now=self._clock())
        budget = self.settings.interval
        runs = await asyncio.gather(*(run_collector(c, ctx, timeout=budget) for c in (*self.others, self.vllm)))
        # The pure CPU part runs on the CPU worker thread: the loop keeps answering /metrics meanwhile.
        if self._cpu is None:
            series, self.body = self._derive_and_render(ctx, runs)
        else:
            series, self.body = await asyncio.get_running_loop().run_in_executor(
                self._cpu, self._derive_and_render, ctx, runs)
        self.cycles += 1
        self.last_cycle_at = time.monotonic()
        return series

    def _derive_and_render(self, ctx: CycleContext, runs: Sequence[CollectorRun]) -> tuple[list[Series], bytes]:
        series = [s for run in runs for s in run.series]
        series += self.vllm.derived(ctx)
        series += health_series(runs)
        series.append(Series("kvscale_exporter_build_info", {"version": __version__}, 1.0))
        self._snapshot.update(series)
        return series, render(self._registry)

    async def run_forever(self) -> None:
        interval = self.settings.interval
        next_at = time.monotonic()
        while True:
            try:
                await self.run_cycle()
            except Exception:  # a bug in one cycle must not end the exporter; /healthz turns 503 if it persists
                self.failed_cycles += 1
                log.exception("collection cycle failed; the last good /metrics is served until one succeeds")
            next_at += interval
            delay = next_at - time.monotonic()
            if delay < 0:  # an overrun cycle skips slots instead of bunching up
                log.warning("collection cycle overran the %.3gs interval", interval)
                next_at = time.monotonic() + interval
                delay = interval
            await asyncio.sleep(delay)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/", self._index)
        return app

    async def _metrics(self, request: web.Request) -> web.Response:
        if not self.cycles:
            return web.Response(status=503, text="first collection still running\n")
        return web.Response(body=self.body, headers={"Content-Type": CONTENT_TYPE})

    async def _healthz(self, request: web.Request) -> web.Response:
        """200 once a collection completed and while they keep completing (within three intervals)."""
        if self.last_cycle_at is None:
            return web.Response(status=503, text="first collection still running\n")
        if time.monotonic() - self.last_cycle_at > 3 * self.settings.interval:
            return web.Response(status=503, text="collection loop stalled\n")
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        if not self.cycles or (self._ready_check is not None and not self._ready_check()):
            return web.Response(status=503, text="not ready\n")
        return web.Response(text="ready\n")

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(text="kvscale-exporter: see /metrics, /healthz, /readyz\n")


def target_source(settings: Settings, environ: dict[str, str]) -> TargetSource:
    """Static targets, or the (started) pod watcher."""
    if settings.vllm_target:
        try:
            return StaticTargets(unique([parse_static(spec) for spec in settings.vllm_target]))
        except TargetError as exc:
            raise SetupError(str(exc)) from exc
    in_cluster = bool(environ.get("KUBERNETES_SERVICE_HOST"))
    if settings.kubernetes == "off" or (settings.kubernetes == "auto" and not in_cluster):
        log.warning("no --vllm-target and Kubernetes discovery is off: no vLLM engine will be scraped")
        return StaticTargets([])
    if not settings.node_name:
        raise SetupError("Kubernetes discovery needs --node-name (or NODE_NAME from the downward API)")
    from kubernetes import client

    from exporter.contract.kube_events import KubeSourceError
    from exporter.contract.kubewatch import api_client
    from exporter.vllm.kube_targets import PodWatcher

    try:
        api = api_client()
    except KubeSourceError as exc:
        raise SetupError(f"Kubernetes discovery: {exc}") from exc
    return PodWatcher(core_v1=client.CoreV1Api(api), node_name=settings.node_name,
                      label_selector=settings.pod_selector, default_port=settings.pod_port,
                      default_path=settings.pod_path).start()


def gpu_collectors(settings: Settings) -> list[Collector]:
    if settings.nvml == "off":
        return []
    try:
        from exporter.gpu import GpuSetupError, build_collector
    except ImportError as exc:
        if settings.nvml == "on":
            raise SetupError(f"--nvml on: the GPU collector is unavailable: {exc}") from exc
        return []
    try:
        collector = build_collector(mode=settings.nvml,  # type: ignore[arg-type]
                                    node_name=settings.node_name, pod_resources_socket=settings.pod_resources_socket,
                                    library_path=settings.nvml_library or None, dra=settings.dra)  # type: ignore[arg-type]
    except GpuSetupError as exc:
        raise SetupError(str(exc)) from exc
    return [collector] if collector is not None else []


async def serve(settings: Settings, *, started: asyncio.Event | None = None) -> None:
    """Run the exporter until cancelled. Setup errors raise before the port is bound."""
    source = target_source(settings, dict(os.environ))
    others = gpu_collectors(settings)
    policy = VllmPolicy(window_seconds=settings.window, quantiles=tuple(settings.quantiles),
                        thresholds=settings.policy, gpu_price_per_hour=settings.gpu_price_per_hour or None,
                        default_gpus_per_pod=settings.gpus_per_pod,
                        min_span_seconds=min(settings.window_min_ratio * settings.window,
                                             settings.window - settings.interval))
    limits = TargetLimits(max_models=settings.max_models_per_target, max_engines=settings.max_engines_per_target,
                          max_series=settings.max_series_per_target,
                          max_label_value_bytes=settings.max_label_value_bytes)
    asyncio.get_running_loop().set_exception_handler(QuietExceptionHandler())
    connector = aiohttp.TCPConnector(limit=64, limit_per_host=2, force_close=False)
    # Two threads: reading bodies (a read past its deadline finishes there alone), and deriving and
    # rendering, which therefore never waits behind a slow read.
    reader = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kvscale-read")
    cpu = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kvscale-cpu")
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        vllm = VllmCollector(source=source, session=session, policy=policy, cpu=reader, limits=limits,
                             scrape_timeout=settings.scrape_timeout, max_body_bytes=settings.max_body_bytes)
        exporter = Exporter(settings=settings, vllm=vllm, others=others, ready_check=lambda: vllm.ready, cpu=cpu)
        app = exporter.app()
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        # One setting bounds the header read and the keep-alive: a connection without a complete request.
        http = ConnectionLimits(max_connections=settings.http_max_connections,
                                header_timeout=settings.http_idle_timeout, keepalive_timeout=settings.http_idle_timeout,
                                max_header_bytes=HTTP_MAX_HEADER_BYTES, max_line_bytes=HTTP_MAX_LINE_BYTES,
                                max_field_bytes=HTTP_MAX_FIELD_BYTES, max_headers=HTTP_MAX_HEADERS)
        listener = Listener(runner, http, None, errors=PLAIN_TEXT)
        host, _, port = settings.listen.rpartition(":")
        try:
            await listener.start(host.strip("[]"), int(port))
        except OSError as exc:
            await runner.cleanup()
            for pool in (reader, cpu):
                pool.shutdown(wait=False, cancel_futures=True)
            await vllm.close()
            for collector in others:
                await collector.close()
            raise SetupError(f"cannot listen on {settings.listen}: {exc}") from exc
        log.info("kvscale-exporter %s listening on %s", __version__, settings.listen)
        if started is not None:
            started.set()
        try:
            await exporter.run_forever()
        finally:
            for collector in (*others, vllm):
                try:
                    await collector.close()
                except Exception:  # one failed release must not keep the others (or the port) held
                    log.exception("closing collector %s failed", collector.name)
            await listener.close()
            await runner.cleanup()
            for pool in (reader, cpu):
                pool.shutdown(wait=False, cancel_futures=True)
