"""Accepting connections before anyone is authenticated: a cap, a deadline and a byte budget.

Client certificates are optional at the TLS layer (health probes have none), so a
stranger can open connections. Everything such a connection can make the adapter
hold is bounded here, as k8s.io/apiserver bounds it (ReadHeaderTimeout, IdleTimeout,
MaxHeaderBytes):

- at most ``max_connections`` open at once, counted from the TCP accept (TLS
  handshakes included); one more displaces the connection idle longest, or is
  closed at once when every connection has a request in progress;
- the TLS handshake and the first request's header must be complete within
  ``header_timeout`` of the accept, else 408; a kept-alive connection must start its
  next request within ``keepalive_timeout`` of the last answer (aiohttp's idle close);
- a request header larger than ``max_header_bytes`` is refused with 431.

Every error answered here, and every error aiohttp's parser answers itself, is a
metav1 Status; what is logged about bad clients is rate-limited and never quotes
what the client sent (an oversized ``Authorization`` header must not reach the log).
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import math
import ssl
from asyncio import sslproto
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from adapter import wire
from adapter.errorlog import RateLimitedLog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 2048
    header_timeout: float = 10.0
    keepalive_timeout: float = 60.0
    max_header_bytes: int = 64 * 1024


def status_bytes(code: int, reason: str, message: str) -> bytes:
    """A complete HTTP/1.1 response carrying a metav1 Status, closing the connection."""
    body = json.dumps(wire.status(code, reason, message), separators=(",", ":")).encode()
    head = (f"HTTP/1.1 {code} {HTTPStatus(code).phrase}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode("ascii") + body


class Listener:
    """Serves an aiohttp app on host:port with :class:`ConnectionLimits`; TLS when a context is given."""

    def __init__(self, runner: web.AppRunner, limits: ConnectionLimits, ssl_context: ssl.SSLContext | None,
                 *, problems: RateLimitedLog | None = None) -> None:
        self._runner = runner
        self.limits = limits
        self._ssl = ssl_context
        self.problems = problems or RateLimitedLog(log)
        self.open = 0
        self.refused = 0
        self.evicted = 0
        self._slots: dict[_Slot, None] = {}  # open connections, oldest first
        self._server: asyncio.Server | None = None
        self._closed_since_trim = 0
        self._trim: asyncio.TimerHandle | None = None

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Gate(self), host, port, backlog=1024, reuse_address=True)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _closed(self, slot: _Slot) -> None:
        self.open -= 1
        self._slots.pop(slot, None)
        self._closed_since_trim += 1
        if self._closed_since_trim >= _TRIM_AFTER and self._trim is None:
            self._trim = asyncio.get_running_loop().call_later(1.0, self._give_back_memory)

    def _give_back_memory(self) -> None:
        # glibc keeps freed heap pages: after a burst of connections the process would stay at its peak.
        self._trim, self._closed_since_trim = None, 0
        malloc_trim()

    def _admit(self, transport: asyncio.Transport) -> _Slot | None:
        """A slot for a new connection. At the cap it displaces the connection idle longest (no request
        in progress: still handshaking, still sending its header, or kept alive), so strangers holding
        connections cannot lock the aggregator out; when every connection is busy it is refused."""
        if self.open >= self.limits.max_connections:
            idle = [slot for slot in self._slots if slot.idle]
            if not idle:
                self.refused += 1
                self.problems.warning("connection from %s refused: %d connections open, all busy "
                                      "(--max-connections)", _peer(transport), self.open)
                return None
            victim = min(idle, key=lambda slot: slot.active)
            self.evicted += 1
            self.problems.warning("closing the idle connection from %s to admit one from %s: %d connections "
                                  "open (--max-connections)", _peer(victim.raw), _peer(transport), self.open)
            victim.raw.abort()
            victim.release()
        self.open += 1
        slot = _Slot(self, transport)
        self._slots[slot] = None
        return slot

    def _handler(self, slot: _Slot) -> _Handler:
        server = self._runner.server
        assert server is not None, "runner.setup() first"
        return _Handler(server, loop=asyncio.get_running_loop(), slot=slot,
                        keepalive_timeout=self.limits.keepalive_timeout, access_log=None)


_LINGER = 1.0  # seconds a refused connection is drained before it is closed
_TRIM_AFTER = 64  # closed connections before memory is handed back (one call costs about a millisecond)


def malloc_trim() -> bool:
    """Return freed heap memory to the operating system (glibc); False where there is no such call."""
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)
    return True


def _peer(transport: asyncio.BaseTransport | None) -> str:
    peer = transport.get_extra_info("peername") if transport is not None else None
    return str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"


class _Slot:
    """One admitted connection, from the TCP accept to its close: released exactly once."""

    def __init__(self, listener: Listener, raw: asyncio.Transport) -> None:
        self.listener = listener
        self.raw = raw
        self.handler: _Handler | None = None
        self.connected = False
        self._released = False
        loop = asyncio.get_running_loop()
        self.active = loop.time()  # when its last request header completed (or it was accepted)
        self._deadline: asyncio.TimerHandle | None = loop.call_later(listener.limits.header_timeout, self._expire)

    @property
    def idle(self) -> bool:
        """No request in progress: handshaking, reading a header, or waiting on keep-alive."""
        return self.handler is None or not self.connected or self.handler.waiting

    def header_done(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def release(self) -> None:
        if not self._released:
            self._released = True
            self.header_done()
            self.listener._closed(self)

    def handshake_done(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.cancelled():
            waiter.exception()  # retrieved: failed handshakes are routine (scanners, plain-HTTP probes), not logged
        if not self.connected:  # failed, timed out, or the client left during the handshake
            self.release()

    def _expire(self) -> None:
        self._deadline = None
        peer = _peer(self.raw)
        if self.handler is not None and self.connected:
            self.listener.problems.warning("closing a connection from %s: no complete request header within "
                                           "%g s", peer, self.listener.limits.header_timeout)
            self.handler.refuse(408, "Timeout", f"no complete request header within "
                                                f"{self.listener.limits.header_timeout:g} s")
        else:
            self.listener.problems.warning("closing a connection from %s: TLS handshake not complete within %g s",
                                           peer, self.listener.limits.header_timeout)
            self.raw.abort()
            self.release()


class _TLS(sslproto.SSLProtocol):
    # asyncio reads TLS in 256 KiB buffers, one allocated per connection and zeroed: 1,000 idle
    # connections held ~250 MB. A TLS record is at most 16 KiB of plaintext; 32 KiB reads lose nothing.
    max_size = 32 * 1024


class _Gate(asyncio.Protocol):
    """The protocol of a fresh TCP connection: admits it, then hands it to TLS and aiohttp in the same step."""

    def __init__(self, listener: Listener) -> None:
        self._listener = listener

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        slot = self._listener._admit(transport)
        if slot is None:
            transport.abort()
            return
        handler = slot.handler = self._listener._handler(slot)
        context = self._listener._ssl
        if context is None:
            transport.set_protocol(handler)
            handler.connection_made(transport)
            return
        # What loop.create_server(ssl=...) does per connection, done here so the slot is counted from
        # the accept and released when a handshake fails (the app protocol never hears of those).
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        waiter.add_done_callback(slot.handshake_done)
        tls = _TLS(loop, handler, context, waiter, server_side=True,
                                   ssl_handshake_timeout=math.ceil(self._listener.limits.header_timeout) + 1)
        transport.set_protocol(tls)
        tls.connection_made(transport)


class _Handler(RequestHandler):
    """aiohttp's request handler with the header budget, the first-header deadline and Status errors."""

    def __init__(self, manager: web.Server, *, slot: _Slot, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._slot = slot
        self._header_bytes = 0
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._slot.connected = True
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._slot.release()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        parsed = self._request_count
        super().data_received(data)
        if self._request_count != parsed:
            self._header_bytes = 0
            self._slot.header_done()
            self._slot.active = asyncio.get_running_loop().time()
        elif self._current_request is None and not self._messages:  # still reading a request header
            self._header_bytes += len(data)
            if self._header_bytes > self._slot.listener.limits.max_header_bytes:
                limit = self._slot.listener.limits.max_header_bytes
                self._slot.listener.problems.warning("refused a request from %s: header over %d bytes",
                                                     _peer(self.transport), limit)
                self.refuse(431, "BadRequest", f"request header larger than {limit} bytes")

    @property
    def waiting(self) -> bool:
        """Waiting for a request (aiohttp's own idle state, the one its keep-alive timer closes)."""
        return self._current_request is None and not self._messages

    def refuse(self, code: int, reason: str, message: str) -> None:
        """Answer with a Status outside any request (the header never completed), then close.

        What the client still sends is read and dropped for a moment first: closing a socket with
        unread input resets the connection, and the client would lose the answer.
        """
        if self._refused:
            return
        self._refused = True
        self._slot.header_done()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(status_bytes(code, reason, message))
        asyncio.get_running_loop().call_later(_LINGER, self.force_close)

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        # aiohttp's own answer quotes the start of the offending line (an Authorization header, say)
        # back to the client and into a traceback in the log: name the kind of error only.
        kind = type(exc).__name__ if exc is not None else "error"
        self._slot.listener.problems.warning("malformed request from %s: %s (HTTP %d)", _peer(self.transport), kind,
                                             status)
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send the error")
        reason = "BadRequest" if status < 500 else "InternalError"
        text = f"malformed HTTP request ({kind})" if status < 500 else "an internal error occurred"
        body = json.dumps(wire.status(status, reason, text), separators=(",", ":")).encode()
        # The connection is closed after this answer: say so, or a client reuses it and meets a reset.
        response = web.Response(body=body, status=status, content_type="application/json",
                                headers={"Connection": "close"})
        response.force_close()
        return response
