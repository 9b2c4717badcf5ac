"""Unauthenticated clients against a real adapter process: connection cap, header deadline and budget,
Status errors from the parser, rate-limited logs, TLS 1.2 suites, and memory back to baseline."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapter.server import STATUS_ERRORS
from tests.adapter.helpers import AdapterProcess, adapter_process
from tests.adapter.load import MiB, rss, settled_rss

status_bytes = STATUS_ERRORS.response  # the adapter's answers outside the app: metav1 Status


@pytest.fixture
def adapter(tmp_path: Path) -> Iterator[AdapterProcess]:
    with adapter_process(tmp_path, "--request-header-timeout", "2", "--max-connections", "1500") as served:
        yield served


async def warm(served: AdapterProcess, n: int = 20) -> None:
    """A few complete requests, so the baseline includes what the first requests allocate for good."""
    for _ in range(n):
        r, w = await asyncio.open_connection("127.0.0.1", served.port, ssl=served.context())
        w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await r.read()
        w.close()


async def response(reader: asyncio.StreamReader, timeout: float = 30.0) -> tuple[int, bytes, bytes]:
    """(status, head, body) of one HTTP response; the server is expected to close after it."""
    raw = await asyncio.wait_for(reader.read(), timeout)
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, body


async def test_unfinished_headers_do_not_hold_memory(adapter: AdapterProcess) -> None:
    """200 connections sending headers that never end took RSS from 54 to 561 MB, 516 MB after they left."""
    await warm(adapter)
    baseline = rss(adapter)
    conns = [await asyncio.open_connection("127.0.0.1", adapter.port, ssl=adapter.context(user=False))
             for _ in range(200)]

    async def pad(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
        answer = asyncio.create_task(reader.read(65536))  # the server answers while we are still sending
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        with contextlib.suppress(ConnectionError):
            for i in range(256):  # 2 MB of header lines at most, each under aiohttp's own line limit
                if answer.done():
                    break
                writer.write(b"X-Pad-%d: %s\r\n" % (i, b"a" * 8000))
                await writer.drain()
        head, _, body = (await asyncio.wait_for(answer, 30)).partition(b"\r\n\r\n")
        assert json.loads(body)["kind"] == "Status"
        return int(head.split(b" ", 2)[1])

    codes = await asyncio.gather(*(pad(r, w) for r, w in conns))
    peak = rss(adapter)
    for _, writer in conns:
        writer.close()
    assert set(codes) == {431}
    assert peak - baseline < 80 * MiB, f"peak {peak / MiB:.0f} MiB from {baseline / MiB:.0f}"
    after = await settled_rss(adapter, baseline + 25 * MiB)
    assert after - baseline <= 25 * MiB, f"after {after / MiB:.0f} MiB from {baseline / MiB:.0f}"


async def test_idle_tls_connections_cost_little_and_memory_returns(adapter: AdapterProcess) -> None:
    """1,000 idle TLS connections added ~225 MB (asyncio's 256 KiB read buffer each)."""
    await warm(adapter)
    baseline = rss(adapter)
    context = adapter.context()
    conns = []
    for _ in range(1000):
        reader, writer = await asyncio.open_connection("127.0.0.1", adapter.port, ssl=context)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # one request, then idle on keep-alive
        conns.append((reader, writer))
    for reader, _ in conns:
        assert (await asyncio.wait_for(reader.readuntil(b"ok"), 30)).startswith(b"HTTP/1.1 200")
    peak = rss(adapter)
    for _, writer in conns:
        writer.close()
    assert peak - baseline < 120 * MiB, f"peak {peak / MiB:.0f} MiB from {baseline / MiB:.0f}"
    after = await settled_rss(adapter, baseline + 25 * MiB)
    assert after - baseline <= 25 * MiB, f"after {after / MiB:.0f} MiB from {baseline / MiB:.0f}"


async def test_no_request_header_in_time_is_408_status(adapter: AdapterProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", adapter.port, ssl=adapter.context(user=False))
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and nothing more
    code, head, body = await response(reader)
    assert code == 408 and b"application/json" in head
    assert json.loads(body)["reason"] == "Timeout"
    # A TCP connection that never starts its TLS handshake is closed too, not held.
    raw_reader, raw_writer = await asyncio.open_connection("127.0.0.1", adapter.port)
    assert await asyncio.wait_for(raw_reader.read(), 30) == b""
    raw_writer.close()
    writer.close()


async def test_oversized_authorization_header_is_a_status_and_never_logged(adapter: AdapterProcess) -> None:
    secret = b"Bearer eyJzZWNyZXQ" + b"x" * 9000
    reader, writer = await asyncio.open_connection("127.0.0.1", adapter.port, ssl=adapter.context(user=False))
    writer.write(b"GET /apis HTTP/1.1\r\nHost: x\r\nAuthorization: " + secret + b"\r\n\r\n")
    code, head, body = await response(reader)
    writer.close()
    assert code == 400 and b"application/json" in head
    assert b"Connection: close" in head  # the fuzzer found it missing: a reused connection met a reset
    status = json.loads(body)
    assert (status["kind"], status["reason"]) == ("Status", "BadRequest")
    assert b"eyJzZWNyZXQ" not in body
    await asyncio.sleep(0.5)
    assert "eyJzZWNyZXQ" not in adapter.log_text()
    assert "malformed request" in adapter.log_text()


async def test_malformed_requests_are_logged_rate_limited(adapter: AdapterProcess) -> None:
    """1,000 bad requests wrote a traceback each (732 kB in 2.8 s)."""
    before = len(adapter.log_text())
    for _ in range(100):
        reader, writer = await asyncio.open_connection("127.0.0.1", adapter.port, ssl=adapter.context(user=False))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n")
        code, head, _ = await response(reader)
        assert code == 400 and b"application/json" in head
        writer.close()
    await asyncio.sleep(0.5)
    new = adapter.log_text()[before:]
    assert "Traceback" not in new
    assert new.count("malformed request") <= 10
    assert len(new) < 4000


async def test_at_the_connection_cap_a_new_client_displaces_the_longest_idle(tmp_path: Path) -> None:
    """No cap let strangers exhaust memory; a cap that refused newcomers would let them lock the aggregator
    out instead. Full of idle connections, the adapter closes the oldest idle one and serves the newcomer."""
    with adapter_process(tmp_path, "--max-connections", "5") as served:
        context = served.context()
        held = [await asyncio.open_connection("127.0.0.1", served.port, ssl=context) for _ in range(5)]
        await asyncio.sleep(0.3)
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port, ssl=context)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await response(reader))[0] == 200
        oldest_reader, _ = held[0]
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            assert await asyncio.wait_for(oldest_reader.read(), 30) == b""  # closed, not held
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port, ssl=context)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        _, _, metrics = await response(reader)
        displaced = next(line for line in metrics.splitlines()
                         if line.startswith(b'kvscale_adapter_connections_closed_total{reason="displaced"}'))
        assert float(displaced.split()[1]) >= 1
        held_now = next(line for line in metrics.splitlines() if line.startswith(b"kvscale_adapter_connections_open "))
        assert 1 <= float(held_now.split()[1]) <= 5  # never over the cap
        for _, w in held:
            w.close()
        assert "closing the idle connection from 127.0.0.1 to admit one" in served.log_text()


@pytest.mark.parametrize(("ciphers", "accepted"), [
    ("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA384", False),
    ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256", True),
])
async def test_tls12_offers_aead_suites_only(adapter: AdapterProcess, ciphers: str, accepted: bool) -> None:
    context = adapter.context(user=False)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(ciphers)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", adapter.port, ssl=context)
    except (ssl.SSLError, ConnectionError):  # a handshake alert, or the connection closed on it
        assert not accepted
        return
    assert accepted
    writer.close()


def test_status_bytes_is_a_complete_response() -> None:
    head, _, body = status_bytes(431, "BadRequest", "too big").partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large")
    assert f"Content-Length: {len(body)}".encode() in head
    assert json.loads(body) == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": "too big", "reason": "BadRequest", "code": 431}
