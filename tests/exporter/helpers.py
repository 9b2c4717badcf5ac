"""Test helpers for the exporter: in-process vLLM-format targets on loopback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp import web

from exporter.app import Exporter, serve
from exporter.collector import Series
from exporter.settings import build
from exporter.vllm.collector import VllmCollector
from exporter.vllm.series import VllmPolicy
from exporter.vllm.targets import StaticTargets, parse_static
from simulator.target import TargetState, load_template, make_app
from tests.conftest import VLLM_FIXTURES, free_port

DP2 = VLLM_FIXTURES / "v0.33.0-dp2-optional-features.prom"
SINGLE = VLLM_FIXTURES / "v0.33.0-single-engine.prom"


class ManualClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    """Serve an aiohttp app on loopback; yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def vllm_target(fixture: Path = SINGLE, *, growth: float = 0.1,
                      clock: Callable[[], float] | None = None) -> AsyncIterator[tuple[str, TargetState]]:
    """A simulated vLLM engine; yields (its /metrics URL, its state for fault injection)."""
    template = load_template(fixture.read_text())
    state = TargetState(template, growth, clock=clock) if clock else TargetState(template, growth)
    async with serve_app(make_app(state)) as url:
        yield f"{url}/metrics", state


def text_app(body: bytes, status: int = 200) -> web.Application:
    """An app whose /metrics always answers ``body``."""
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, status=status, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", handler)
    return app


class Body:
    """A /metrics body a test changes between collections; ``app()`` serves the current one."""

    def __init__(self, text: str) -> None:
        self.text = text

    def app(self) -> web.Application:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=self.text.encode(), content_type="text/plain")

        app = web.Application()
        app.router.add_get("/metrics", handler)
        return app


def by_pod(series: Sequence[Series], family: str) -> dict[str, float]:
    return {s.labels["pod"] + ("/" + s.labels["quantile"] if "quantile" in s.labels else ""): s.value
            for s in series if s.family == family}


def errors(series: Sequence[Series]) -> dict[tuple[str, str], float]:
    return {(s.labels["pod"], s.labels["reason"]): s.value for s in series
            if s.family == "kvscale_exporter_target_errors_total"}


@asynccontextmanager
async def exporter_over(bodies: dict[str, Body], clock: ManualClock, *, cpu: ThreadPoolExecutor | None = None,
                        decoder: object = None, **values: object) -> AsyncIterator[Exporter]:
    s = build([("test", {"listen": "127.0.0.1:1", "interval": 1.0, "window": 60.0, "scrape_timeout": 0.5,
                         **values})])
    policy = VllmPolicy(window_seconds=s.window, quantiles=tuple(s.quantiles), thresholds=s.policy,
                        gpu_price_per_hour=None, default_gpus_per_pod=1)
    async with AsyncExitStack() as stack:
        specs = [f"ns/{pod}={await stack.enter_async_context(serve_app(body.app()))}/metrics"
                 for pod, body in bodies.items()]
        session = await stack.enter_async_context(aiohttp.ClientSession())
        extra = {"decoder": decoder} if decoder is not None else {}
        vllm = VllmCollector(source=StaticTargets([parse_static(x) for x in specs]), session=session,
                             policy=policy, scrape_timeout=s.scrape_timeout, max_body_bytes=s.max_body_bytes,
                             cpu=cpu, **extra)  # type: ignore[arg-type]
        yield Exporter(settings=s, vllm=vllm, clock=clock, cpu=cpu)


@asynccontextmanager
async def running_exporter(values: dict[str, object], *, until: str = "/healthz") -> AsyncIterator[str]:
    """``serve`` with these settings on a free port, once ``until`` answers 200; yields HOST:PORT."""
    listen = f"127.0.0.1:{free_port()}"
    settings = build([("test", {"listen": listen, "nvml": "off", "kubernetes": "off", **values})])
    started = asyncio.Event()
    task = asyncio.create_task(serve(settings, started=started))
    try:
        await asyncio.wait_for(started.wait(), 10)
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                async with session.get(f"http://{listen}{until}") as resp:
                    if resp.status == 200:
                        break
                await asyncio.sleep(0.05)
        yield listen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
