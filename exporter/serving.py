"""The exporter's HTTP server, bounded: connections, idle time, header sizes, error logging.

aiohttp's defaults suit a proxy-fronted web app, not a port every node exposes: no cap
on connections, a 3,630 s keep-alive that also lets a client hold a connection open with
a request that never completes, and 8 kB x 128 headers buffered per connection (1,200
hostile connections took the exporter from 64 to 447 MiB). Here:

- at most ``max_connections`` are open; at the cap a new connection displaces the one
  idle longest (no request in progress), or is closed at once when every one is busy,
  so a flood of idle connections cannot lock Prometheus out;
- a connection without a complete request for ``idle_timeout`` seconds (an idle
  keep-alive, or headers still arriving) is closed: aiohttp's keep-alive timer does this
  while its handler waits for a request, so one setting bounds both;
- a request line or header field is at most 4 kB, and at most 32 headers.

Past the file-descriptor limit asyncio reports a failed ``accept()`` with a traceback
each time; :class:`QuietExceptionHandler` logs one line per kind of error and interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

# aiohttp request-parser bounds: what one connection may make the server buffer for headers.
MAX_LINE_SIZE, MAX_FIELD_SIZE, MAX_HEADERS = 4096, 4096, 32


class _Refused(asyncio.Protocol):
    """A connection over the cap when every open one is busy: closed at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.abort()  # type: ignore[attr-defined]


class ConnectionGuard:
    """Wraps the server's protocol factory to cap open connections; ``middleware`` tracks busy ones."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], *, max_connections: int) -> None:
        self._factory = factory
        self.max_connections = max_connections
        self._open: OrderedDict[asyncio.BaseTransport, int] = OrderedDict()  # transport -> requests in progress
        self.displaced = 0
        self.refused = 0

    def __call__(self) -> asyncio.Protocol:
        return _Tracked(self, self._factory())

    def __len__(self) -> int:
        return len(self._open)

    def _admit(self, transport: asyncio.BaseTransport) -> bool:
        if len(self._open) >= self.max_connections:
            idle = next((t for t, busy in self._open.items() if not busy), None)  # oldest first
            if idle is None:
                self.refused += 1
                return False
            self.displaced += 1
            self._open.pop(idle)
            idle.abort()  # type: ignore[attr-defined]
        self._open[transport] = 0
        return True

    def _closed(self, transport: asyncio.BaseTransport) -> None:
        self._open.pop(transport, None)

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        transport = request.transport
        if transport is None or transport not in self._open:
            return await handler(request)
        self._open[transport] += 1
        self._open.move_to_end(transport)  # most recently active last: displaced last
        try:
            return await handler(request)
        finally:
            if transport in self._open:
                self._open[transport] -= 1


class _Tracked(asyncio.Protocol):
    """Delegates to aiohttp's request handler; registers and unregisters the connection with the guard."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._guard._admit(transport):
            transport.abort()  # type: ignore[attr-defined]
            return
        self._transport = transport
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._guard._closed(self._transport)
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._transport is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._transport is not None else None

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


async def start_site(runner: web.AppRunner, guard: ConnectionGuard, host: str, port: int) -> asyncio.Server:
    """Listen on host:port with the guarded protocol factory (``runner`` set up with ``guard`` around its server)."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(guard, host or None, port, reuse_address=True, backlog=128)


def guarded_runner(app: web.Application, *, max_connections: int,
                   idle_timeout: float) -> tuple[web.AppRunner, ConnectionGuard]:
    """An AppRunner with bounded parsing and keep-alive, and the guard to listen through (``start_site``)."""
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=idle_timeout,
                           max_line_size=MAX_LINE_SIZE, max_field_size=MAX_FIELD_SIZE, max_headers=MAX_HEADERS)

    def protocol() -> asyncio.Protocol:
        server = runner.server
        assert server is not None, "runner.setup() comes before listening"
        return server()

    guard = ConnectionGuard(protocol, max_connections=max_connections)
    app.middlewares.append(guard.middleware)
    return runner, guard


class QuietExceptionHandler:
    """An asyncio exception handler logging each kind of error at most once per ``interval`` seconds.

    The first occurrence is logged with its traceback; repeats within the interval are
    counted and summarised in one line when the next one is logged.
    """

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        kind = f"{context.get('message', '')}|{type(exc).__name__}|{getattr(exc, 'errno', '')}"
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._last[kind] = now
        repeats = self._suppressed.pop(kind, 0)
        note = f" ({repeats} more like it in the last {self.interval:.0f}s not logged)" if repeats else ""
        log.error("%s%s", context.get("message", "unhandled error in the event loop"), note,
                  exc_info=exc if last is None else None)
