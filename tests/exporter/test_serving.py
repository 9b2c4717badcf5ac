"""The exporter's HTTP server under hostile clients (issue 11, defects 6 and 7), through ``serve``."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

from exporter.contract.errorlog import QuietExceptionHandler
from tests.exporter.helpers import running_exporter


def exporter(**values: object) -> contextlib.AbstractAsyncContextManager[str]:
    """A running exporter (no targets) after its first collection; yields HOST:PORT."""
    return running_exporter({"interval": 0.2, "window": 2.0, "scrape_timeout": 0.1, **values})


async def half_request(listen: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that starts a request and never finishes its headers (slowloris)."""
    host, _, port = listen.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    await writer.drain()
    return reader, writer


async def closed_by_server(reader: asyncio.StreamReader, wait: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), wait) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def test_connections_are_capped_and_a_scraper_displaces_idle_ones() -> None:
    async with exporter(http_max_connections=8) as listen:
        hostile = [await half_request(listen) for _ in range(40)]
        async with aiohttp.ClientSession() as session:
            for _ in range(5):
                async with session.get(f"http://{listen}/metrics") as resp:
                    assert resp.status == 200
        gone = await asyncio.gather(*(closed_by_server(r, 2.0) for r, _ in hostile))
        for _, writer in hostile:
            writer.close()
    assert sum(not g for g in gone) <= 8
    assert gone[0]  # the longest idle went first


async def test_a_request_whose_headers_never_complete_is_closed_after_the_idle_timeout() -> None:
    async with exporter(http_idle_timeout=0.5) as listen:
        reader, writer = await half_request(listen)
        assert await closed_by_server(reader, 10.0)  # aiohttp's default would hold it 3,630 s
        writer.close()


async def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() -> None:
    async with exporter(http_idle_timeout=0.5) as listen:
        host, _, port = listen.rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readuntil(b"ok\n")).startswith(b"HTTP/1.1 200")
        assert await closed_by_server(reader, 10.0)
        writer.close()


async def test_oversized_headers_are_refused_not_buffered() -> None:
    async with exporter() as listen, aiohttp.ClientSession() as session:
        async with session.get(f"http://{listen}/metrics", headers={"X-Big": "a" * 5000}) as resp:
            assert resp.status in (400, 431)
        headers = {f"X-H{i}": "v" for i in range(40)}
        async with session.get(f"http://{listen}/metrics", headers=headers) as resp:
            assert resp.status in (400, 431)
        async with session.get(f"http://{listen}/metrics") as resp:
            assert resp.status == 200


async def test_serve_installs_the_quiet_exception_handler() -> None:
    async with exporter():
        assert isinstance(asyncio.get_running_loop().get_exception_handler(), QuietExceptionHandler)
