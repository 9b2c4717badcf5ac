"""The fleet over real HTTP: each replica as a vLLM server, and a router in front.

Each replica listens on its own loopback port with ``/metrics`` (vLLM 0.33.0 text format
0.0.4), ``/health``, ``/v1/models``, ``/v1/completions`` and ``/v1/chat/completions``
(SSE streaming paced by the engine). Until its cold start is over a replica answers
503, as a pod that is not ready. The router spreads requests over ready replicas by
least outstanding requests. A ticker advances the fleet to the clock's time every few
milliseconds, starts servers for replicas the fleet gained and stops those it retired.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from simulator.engine import openai
from simulator.engine.fleet import Fleet, Replica
from simulator.engine.request import Request

log = logging.getLogger(__name__)
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Submit = Callable[[Request], "Replica | None"]


async def _complete(request: web.Request, fleet: Fleet, submit: Submit, chat: bool) -> web.StreamResponse:
    try:
        body = await request.json()
        c = openai.parse(body, chat=chat, served_model=fleet.profile.served_model_name,
                         max_model_len=fleet.profile.max_model_len)
    except (json.JSONDecodeError, UnicodeDecodeError, openai.BadRequest) as exc:
        return web.json_response({"error": {"message": str(exc), "type": "BadRequestError", "code": 400}},
                                 status=400)
    req = Request(c.prompt_tokens, c.max_tokens, finish_reason="length")
    changed = asyncio.Event()
    req.on_tokens = lambda _r: changed.set()
    replica = submit(req)
    try:
        if not c.stream:
            while not req.finished:
                await changed.wait()
                changed.clear()
            return web.json_response(openai.full(c, req.request_id, " tok" * req.generated, req.finish_reason,
                                                 req.generated))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        sent = 0
        while True:
            await changed.wait()
            changed.clear()
            while sent < req.generated - (1 if req.finished else 0):
                await resp.write(openai.chunk(c, req.request_id, " tok", None).encode())
                sent += 1
            if req.finished:
                await resp.write(openai.chunk(c, req.request_id, " tok", req.finish_reason).encode())
                if c.include_usage:
                    await resp.write(openai.usage_chunk(c, req.request_id, req.generated).encode())
                await resp.write(b"data: [DONE]\n\n")
                await resp.write_eof()
                return resp
    except (asyncio.CancelledError, ConnectionResetError):
        _abort(fleet, replica, req)  # the client went away: vLLM aborts the request
        raise


def _abort(fleet: Fleet, replica: Replica | None, req: Request) -> None:
    if req.finished:
        return
    if replica is None:
        with contextlib.suppress(ValueError):
            fleet.pending.remove(req)
        return
    replica.engines[req.engine_index].abort(req)


def replica_app(fleet: Fleet, replica: Replica) -> web.Application:
    def submit(req: Request) -> Replica:
        req.arrival = fleet.clock.now()
        replica.submit(req)
        return replica

    def unready() -> web.Response | None:
        return None if replica.ready else web.Response(status=503, text="replica not ready\n")

    async def metrics(_: web.Request) -> web.Response:
        if replica.clock.now() < replica.ready_at:
            return web.Response(status=503, text="replica not ready\n")
        return web.Response(text=replica.metrics_text(), headers={"Content-Type": METRICS_CONTENT_TYPE})

    async def health(_: web.Request) -> web.Response:
        return unready() or web.Response(text="")

    async def models(_: web.Request) -> web.Response:
        return unready() or web.json_response(openai.models(fleet.profile.served_model_name,
                                                            fleet.profile.max_model_len))

    async def completions(request: web.Request) -> web.StreamResponse:
        return unready() or await _complete(request, fleet, submit, chat=False)

    async def chat(request: web.Request) -> web.StreamResponse:
        return unready() or await _complete(request, fleet, submit, chat=True)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/chat/completions", chat)
    return app


def router_app(fleet: Fleet) -> web.Application:
    async def health(_: web.Request) -> web.Response:
        ok = any(r.ready for r in fleet.replicas)
        return web.Response(status=200 if ok else 503, text="" if ok else "no ready replica\n")

    async def models(_: web.Request) -> web.Response:
        return web.json_response(openai.models(fleet.profile.served_model_name, fleet.profile.max_model_len))

    async def completions(request: web.Request) -> web.StreamResponse:
        return await _complete(request, fleet, fleet.submit, chat=False)

    async def chat(request: web.Request) -> web.StreamResponse:
        return await _complete(request, fleet, fleet.submit, chat=True)

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/chat/completions", chat)
    return app


async def _listen(app: web.Application, host: str) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://{host}:{port}"


@dataclass(eq=False)
class FleetHandle:
    """What ``serve_fleet`` started: URLs of the router and of every replica, and the ticker."""

    fleet: Fleet
    host: str
    router_url: str = ""
    replica_urls: dict[str, str] = field(default_factory=dict)
    _runners: dict[str, web.AppRunner] = field(default_factory=dict)
    _ticker: asyncio.Task[None] | None = None

    def metrics_urls(self) -> dict[str, str]:
        """``/metrics`` URL of every replica serving now (new ones appear as the fleet scales)."""
        return {name: f"{url}/metrics" for name, url in self.replica_urls.items()}

    async def sync(self) -> None:
        """Start servers for new replicas, stop those of replicas that are gone."""
        live = {r.name: r for r in self.fleet.replicas}
        for name, replica in live.items():
            if name not in self.replica_urls:
                runner, url = await _listen(replica_app(self.fleet, replica), self.host)
                self._runners[name], self.replica_urls[name] = runner, url
        for name in [n for n in self.replica_urls if n not in live]:
            del self.replica_urls[name]
            await self._runners.pop(name).cleanup()

    async def _tick(self, interval: float) -> None:
        while True:
            try:
                self.fleet.advance(self.fleet.clock.now())
                await self.sync()
            except Exception:  # a bug must not freeze the fleet silently: log it and keep ticking
                log.exception("fleet tick failed")
            await asyncio.sleep(interval)

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for runner in self._runners.values():
            await runner.cleanup()
        self._runners.clear()
        self.replica_urls.clear()


async def serve_fleet(fleet: Fleet, host: str = "127.0.0.1", *, tick_seconds: float = 0.005) -> FleetHandle:
    """Serve every replica and the router on loopback ports; returns when all listen."""
    handle = FleetHandle(fleet, host)
    runner, handle.router_url = await _listen(router_app(fleet), host)
    handle._runners["__router__"] = runner
    await handle.sync()
    handle._ticker = asyncio.create_task(handle._tick(tick_seconds))
    return handle
