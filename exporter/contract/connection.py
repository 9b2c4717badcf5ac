"""One accepted connection: what it may make the server hold, and how its errors are answered.

aiohttp's request handler with the bounds k8s.io/apiserver and Go's net/http keep
(MaxHeaderBytes, bounded request lines and header counts), and with every error it answers
itself written in the server's own format: the adapter answers metav1 Status JSON, the
exporter plain text. aiohttp's own error answer quotes the start of the offending line (an
``Authorization`` header, say) back to the client and into a traceback in the log; here only
the kind of error is named, and the log line is rate-limited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from exporter.contract.errorlog import RateLimitedLog

# aiohttp's own parser bounds, the defaults: a request line or one header field, and the header count.
MAX_LINE_BYTES, MAX_FIELD_BYTES, MAX_HEADERS = 8190, 8190, 128
LINGER_SECONDS = 1.0  # a refused connection is drained this long before it is closed


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 2048
    header_timeout: float = 10.0  # from the accept to the end of the first request header, TLS handshake included
    keepalive_timeout: float = 60.0  # a kept-alive connection's wait for its next request
    max_header_bytes: int = 64 * 1024
    max_line_bytes: int = MAX_LINE_BYTES
    max_field_bytes: int = MAX_FIELD_BYTES
    max_headers: int = MAX_HEADERS


@dataclass(frozen=True)
class ErrorFormat:
    """How the errors the server answers outside its app are written.

    ``body(code, reason, message)`` is the answer's body; ``answer_late_header`` says whether a
    first header not complete in time is answered (408) or the connection just closed, as Go's
    net/http (node_exporter) does.
    """

    content_type: str
    body: Callable[[int, str, str], bytes]
    answer_late_header: bool = True

    def response(self, code: int, reason: str, message: str) -> bytes:
        """A complete HTTP/1.1 response carrying the error, closing the connection."""
        body = self.body(code, reason, message)
        head = (f"HTTP/1.1 {code} {HTTPStatus(code).phrase}\r\nContent-Type: {self.content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        return head.encode("ascii") + body


def _plain(code: int, reason: str, message: str) -> bytes:
    return f"{code} {HTTPStatus(code).phrase}: {message}\n".encode()


PLAIN_TEXT = ErrorFormat("text/plain; charset=utf-8", _plain, answer_late_header=False)


class Slot(Protocol):
    """The listener's record of this connection (see :mod:`exporter.contract.listener`)."""

    connected: bool
    active: float

    def header_done(self) -> None: ...

    def release(self) -> None: ...


def peer(transport: asyncio.BaseTransport | None) -> str:
    """The client's address, for the log (never anything it sent)."""
    address = transport.get_extra_info("peername") if transport is not None else None
    return str(address[0]) if isinstance(address, tuple) and address else "unknown"


class BoundedHandler(RequestHandler):
    """aiohttp's request handler with a header budget, error answers in ``errors`` and a quiet log."""

    def __init__(self, manager: web.Server, *, slot: Slot, limits: ConnectionLimits, errors: ErrorFormat,
                 problems: RateLimitedLog, **kwargs: Any) -> None:
        super().__init__(manager, keepalive_timeout=limits.keepalive_timeout, max_line_size=limits.max_line_bytes,
                         max_field_size=limits.max_field_bytes, max_headers=limits.max_headers, **kwargs)
        self._slot = slot
        self._max_header_bytes = limits.max_header_bytes
        self._errors = errors
        self._problems = problems
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
        elif self.waiting:  # still reading a request header
            self._header_bytes += len(data)
            if self._header_bytes > self._max_header_bytes:
                self._problems.warning("refused a request from %s: header over %d bytes", peer(self.transport),
                                       self._max_header_bytes)
                self.refuse(431, "BadRequest", f"request header larger than {self._max_header_bytes} bytes")

    @property
    def waiting(self) -> bool:
        """Waiting for a request (aiohttp's own idle state, the one its keep-alive timer closes)."""
        return self._current_request is None and not self._messages

    def refuse(self, code: int, reason: str, message: str) -> None:
        """Answer an error outside any request (the header never completed), then close.

        What the client still sends is read and dropped for a moment first: closing a socket with
        unread input resets the connection, and the client would lose the answer.
        """
        if self._refused:
            return
        self._refused = True
        self._slot.header_done()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(self._errors.response(code, reason, message))
        asyncio.get_running_loop().call_later(LINGER_SECONDS, self.force_close)

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        kind = type(exc).__name__ if exc is not None else "error"
        if status < 500:
            self._problems.warning("malformed request from %s: %s (HTTP %d)", peer(self.transport), kind, status)
        else:  # the app's own failure: a bug keeps its traceback
            self._problems.warning("error answering a request from %s: %s (HTTP %d)", peer(self.transport), kind,
                                   status, exc_info=exc)
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send the error")
        reason = "BadRequest" if status < 500 else "InternalError"
        text = f"malformed HTTP request ({kind})" if status < 500 else "an internal error occurred"
        # The connection is closed after this answer: say so, or a client reuses it and meets a reset.
        response = web.Response(body=self._errors.body(status, reason, text), status=status,
                                headers={"Content-Type": self._errors.content_type, "Connection": "close"})
        response.force_close()
        return response
