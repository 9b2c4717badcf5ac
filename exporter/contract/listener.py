"""Accepting connections from strangers: a cap, a deadline and a byte budget, plain HTTP or TLS.

aiohttp's defaults suit a proxy-fronted web app, not a port every node exposes (the exporter)
or one on the cluster's API path where client certificates are optional for the health probes
(the adapter): no cap on connections, a 3,630 s keep-alive, and 8 kB x 128 headers buffered per
connection (1,200 hostile connections took the exporter from 64 to 447 MiB; 200 unfinished
headers took the adapter from 54 to 561 MB). Everything a connection can make the server hold is
bounded here, as k8s.io/apiserver bounds it (ReadHeaderTimeout, IdleTimeout, MaxHeaderBytes):

- at most ``max_connections`` open at once, counted from the TCP accept (TLS handshakes
  included); one more displaces the connection idle longest (no request in progress), or is
  closed at once when every connection is busy, so idle strangers cannot lock clients out;
- the TLS handshake and the first request's header must be complete within ``header_timeout``
  of the accept; a kept-alive connection must start its next request within
  ``keepalive_timeout`` of the last answer (aiohttp's idle close);
- a request header larger than ``max_header_bytes`` is refused with 431, and aiohttp's parser
  bounds each line and the header count (:class:`~exporter.contract.connection.ConnectionLimits`).

Errors answered here are written by an :class:`~exporter.contract.connection.ErrorFormat`;
what is logged about clients is rate-limited and never quotes what they sent.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import math
import ssl
from asyncio import sslproto

from aiohttp import web

from exporter.contract.connection import PLAIN_TEXT, BoundedHandler, ConnectionLimits, ErrorFormat, peer
from exporter.contract.errorlog import RateLimitedLog

log = logging.getLogger(__name__)

TLS_READ_BUFFER = 32 * 1024  # bytes asyncio reads a TLS connection in (its own default: 256 KiB each)
TRIM_AFTER = 64  # closed connections before freed memory is handed back (one call costs about a millisecond)


class Listener:
    """Serves an aiohttp app on host:port within :class:`ConnectionLimits`; TLS when a context is given."""

    def __init__(self, runner: web.AppRunner, limits: ConnectionLimits, ssl_context: ssl.SSLContext | None,
                 *, errors: ErrorFormat = PLAIN_TEXT, problems: RateLimitedLog | None = None) -> None:
        self._runner = runner
        self.limits = limits
        self.errors = errors
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
        """Listen on host:port ("" for every interface); OSError when the port cannot be bound."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Gate(self), host or None, port, backlog=1024,
                                                reuse_address=True)

    async def close(self) -> None:
        """Stop accepting; the runner's cleanup then ends the connections (``wait_closed`` would wait for
        them on Python 3.12+, before the cleanup that closes them)."""
        if self._server is not None:
            self._server.close()
            self._server = None

    def _closed(self, slot: _Slot) -> None:
        self.open -= 1
        self._slots.pop(slot, None)
        self._closed_since_trim += 1
        if self._closed_since_trim >= TRIM_AFTER and self._trim is None:
            self._trim = asyncio.get_running_loop().call_later(1.0, self._give_back_memory)

    def _give_back_memory(self) -> None:
        # glibc keeps freed heap pages: after a burst of connections the process would stay at its peak.
        self._trim, self._closed_since_trim = None, 0
        malloc_trim()

    def _admit(self, transport: asyncio.Transport) -> _Slot | None:
        """A slot for a new connection. At the cap it displaces the connection idle longest (no request
        in progress: still handshaking, still sending its header, or kept alive); when every connection
        is busy it is refused."""
        if self.open >= self.limits.max_connections:
            idle = [slot for slot in self._slots if slot.idle]
            if not idle:
                self.refused += 1
                self.problems.warning("connection from %s refused: %d connections open, all busy "
                                      "(connection cap)", peer(transport), self.open)
                return None
            victim = min(idle, key=lambda slot: slot.active)
            self.evicted += 1
            self.problems.warning("closing the idle connection from %s to admit one from %s: %d connections "
                                  "open (connection cap)", peer(victim.raw), peer(transport), self.open)
            victim.raw.abort()
            victim.release()
        self.open += 1
        slot = _Slot(self, transport)
        self._slots[slot] = None
        return slot

    def _handler(self, slot: _Slot) -> BoundedHandler:
        server = self._runner.server
        assert server is not None, "runner.setup() first"
        return BoundedHandler(server, loop=asyncio.get_running_loop(), slot=slot, limits=self.limits,
                              errors=self.errors, problems=self.problems, access_log=None)


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


class _Slot:
    """One admitted connection, from the TCP accept to its close: released exactly once."""

    def __init__(self, listener: Listener, raw: asyncio.Transport) -> None:
        self.listener = listener
        self.raw = raw
        self.handler: BoundedHandler | None = None
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
        timeout = self.listener.limits.header_timeout
        what = "no complete request header" if self.connected else "TLS handshake not complete"
        self.listener.problems.warning("closing a connection from %s: %s within %g s", peer(self.raw), what, timeout)
        if self.handler is not None and self.connected and self.listener.errors.answer_late_header:
            self.handler.refuse(408, "Timeout", f"no complete request header within {timeout:g} s")
        else:
            self.raw.abort()
            self.release()


class _TLS(sslproto.SSLProtocol):
    # One read buffer is allocated per connection and zeroed: at asyncio's 256 KiB, 1,000 idle
    # connections held ~250 MB. A TLS record is at most 16 KiB of plaintext; 32 KiB reads lose nothing.
    max_size = TLS_READ_BUFFER


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
