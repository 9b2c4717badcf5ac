"""Test helpers for the exporter: in-process vLLM-format targets on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web

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
