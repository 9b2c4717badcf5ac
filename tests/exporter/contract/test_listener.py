"""The bounded listener itself, over loopback, plain and TLS: the cap and who it displaces, the
first-header deadline, keep-alive, the header budget, and errors written in the server's format.
The exporter's and the adapter's own checks (tests/exporter/test_serving.py, tests/adapter/test_listener.py)
run it as those commands configure it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trustme
from aiohttp import web

from exporter.contract.connection import PLAIN_TEXT, ConnectionLimits, ErrorFormat
from exporter.contract.errorlog import RateLimitedLog
from exporter.contract.listener import Listener
from tests.conftest import free_port

JSON = ErrorFormat("application/json", lambda code, reason, message: json.dumps(
    {"code": code, "reason": reason, "message": message}).encode())
Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _boom(request: web.Request) -> web.Response:
    raise RuntimeError("a bug")


@asynccontextmanager
async def listening(limits: ConnectionLimits, errors: ErrorFormat = PLAIN_TEXT,
                    context: ssl.SSLContext | None = None) -> AsyncIterator[tuple[Listener, int]]:
    app = web.Application()
    app.router.add_get("/ok", _ok)
    app.router.add_get("/boom", _boom)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    listener = Listener(runner, limits, context, errors=errors,
                        problems=RateLimitedLog(logging.getLogger("test.listener"), burst=1000))
    port = free_port()
    await listener.start("127.0.0.1", port)
    try:
        yield listener, port
    finally:
        await listener.close()
        await runner.cleanup()


async def until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends before it closes (b"" when it closes without an answer)."""
    try:
        return await asyncio.wait_for(reader.read(), 30)
    except ConnectionResetError:
        return b""


async def half_header(port: int) -> Stream:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n")
    await writer.drain()
    return reader, writer


async def settled(listener: Listener, open_: int) -> None:
    while listener.open != open_:
        await asyncio.sleep(0.01)


async def test_at_the_cap_with_every_connection_busy_the_newcomer_is_closed() -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="done")

    app = web.Application()
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    listener = Listener(runner, ConnectionLimits(max_connections=2), None)
    port = free_port()
    await listener.start("127.0.0.1", port)
    try:
        busy = []
        for _ in range(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            busy.append((reader, writer))
        while listener.open < 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # both requests in their handlers
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        with contextlib.suppress(ConnectionError):
            assert await asyncio.wait_for(reader.read(), 30) == b""
        writer.close()
        assert (listener.refused, listener.evicted) == (1, 0)
        release.set()
        for reader, writer in busy:
            assert b"done" in await asyncio.wait_for(reader.readuntil(b"done"), 30)
            writer.close()
    finally:
        await listener.close()
        await runner.cleanup()


async def test_the_connection_idle_longest_is_displaced_not_the_oldest() -> None:
    async with listening(ConnectionLimits(max_connections=3)) as (listener, port):
        kept_r, kept_w = await asyncio.open_connection("127.0.0.1", port)  # accepted first ...
        slow = [await half_header(port), await half_header(port)]
        await settled(listener, 3)
        kept_w.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")  # ... but its request came last
        assert (await kept_r.readuntil(b"ok")).startswith(b"HTTP/1.1 200")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await until_closed(reader)).startswith(b"HTTP/1.1 200")
        assert await until_closed(slow[0][0]) == b""  # idle longest: displaced without an answer
        assert (listener.evicted, listener.refused) == (1, 0)
        kept_w.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await kept_r.readuntil(b"ok")).startswith(b"HTTP/1.1 200")  # still open
        for _, w in (*slow, (kept_r, kept_w), (reader, writer)):
            w.close()
        await settled(listener, 0)  # every slot released exactly once


@pytest.mark.parametrize(("errors", "answer"), [(PLAIN_TEXT, b""), (JSON, b"HTTP/1.1 408 Request Timeout")])
async def test_a_first_header_not_complete_in_time_is_answered_as_the_format_says(errors: ErrorFormat,
                                                                                   answer: bytes) -> None:
    async with listening(ConnectionLimits(header_timeout=0.3), errors) as (listener, port):
        reader, writer = await half_header(port)
        got = await until_closed(reader)
        writer.close()
        assert got.startswith(answer) and bool(got) == bool(answer)
        if answer:
            assert json.loads(got.partition(b"\r\n\r\n")[2])["reason"] == "Timeout"
        await settled(listener, 0)


async def test_a_kept_alive_connection_is_closed_after_the_keepalive_timeout() -> None:
    async with listening(ConnectionLimits(header_timeout=30, keepalive_timeout=0.3)) as (listener, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readuntil(b"ok")).startswith(b"HTTP/1.1 200")
        assert await until_closed(reader) == b""
        writer.close()
        await settled(listener, 0)


@pytest.mark.parametrize("errors", [PLAIN_TEXT, JSON])
async def test_a_header_over_the_budget_is_431_in_the_servers_format(errors: ErrorFormat) -> None:
    async with listening(ConnectionLimits(max_header_bytes=2048), errors) as (_, port):
        reader, writer = await half_header(port)
        with contextlib.suppress(ConnectionError):
            for i in range(8):  # each line within the parser's limits, together over the budget
                writer.write(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000))
                await writer.drain()
        head, _, body = (await until_closed(reader)).partition(b"\r\n\r\n")
        writer.close()
    assert head.startswith(b"HTTP/1.1 431")
    assert f"Content-Type: {errors.content_type}".encode() in head and b"Connection: close" in head
    assert body == errors.body(431, "BadRequest", "request header larger than 2048 bytes")


@pytest.mark.parametrize("errors", [PLAIN_TEXT, JSON])
async def test_a_malformed_request_is_named_never_quoted(errors: ErrorFormat, caplog: pytest.LogCaptureFixture) -> None:
    async with listening(ConnectionLimits(), errors) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        with caplog.at_level(logging.WARNING, "test.listener"):
            writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\nBad Header: s3cr3t-token\r\n\r\n")
            head, _, body = (await until_closed(reader)).partition(b"\r\n\r\n")
        writer.close()
    assert head.split(b" ", 2)[1] == b"400" and b"Connection: close" in head
    assert f"Content-Type: {errors.content_type}".encode() in head
    logged = re.search(r"malformed request from 127\.0\.0\.1: (\w+) \(HTTP 400\)", caplog.text)
    assert logged is not None
    assert body == errors.body(400, "BadRequest", f"malformed HTTP request ({logged[1]})")
    assert b"s3cr3t" not in body and "s3cr3t" not in caplog.text


@pytest.mark.parametrize(("limits", "refused"), [
    (ConnectionLimits(), False),
    (ConnectionLimits(max_line_bytes=4096, max_field_bytes=4096, max_headers=32), True),
])
async def test_parser_bounds_are_the_limits(limits: ConnectionLimits, refused: bool) -> None:
    async with listening(limits) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\nConnection: close\r\n\r\n")
        got = await until_closed(reader)
        writer.close()
    assert got.split(b" ", 2)[1] == (b"400" if refused else b"200")


async def test_an_app_failure_is_a_500_in_the_format_with_its_traceback_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    async with listening(ConnectionLimits(), JSON) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        with caplog.at_level(logging.WARNING, "test.listener"):
            writer.write(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
            head, _, body = (await until_closed(reader)).partition(b"\r\n\r\n")
        writer.close()
    assert head.startswith(b"HTTP/1.1 500")
    assert json.loads(body) == {"code": 500, "reason": "InternalError", "message": "an internal error occurred"}
    (record,) = [r for r in caplog.records if "error answering a request" in r.getMessage()]
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


async def test_tls_handshake_and_first_header_share_one_deadline() -> None:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    async with listening(ConnectionLimits(header_timeout=0.5), JSON, server) as (listener, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readuntil(b"ok")).startswith(b"HTTP/1.1 200")
        never_tls_r, never_tls_w = await asyncio.open_connection("127.0.0.1", port)  # never starts TLS
        late_r, late_w = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        late_w.write(b"GET /ok HTTP/1.1\r\n")  # handshake done, header never finished
        assert await until_closed(never_tls_r) == b""
        assert (await until_closed(late_r)).startswith(b"HTTP/1.1 408")
        writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")  # past the deadline, a kept-alive client still served
        assert (await reader.readuntil(b"ok")).startswith(b"HTTP/1.1 200")
        for w in (writer, never_tls_w, late_w):
            w.close()
        await settled(listener, 0)
