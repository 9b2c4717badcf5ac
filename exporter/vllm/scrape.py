"""Fetch one target's /metrics: a deadline, a body cap, and typed failures.

I/O only. Every way a scrape can fail maps to a :class:`ScrapeError` with a short,
fixed ``reason`` (used as a metric label, so the set is closed) and a message for the log.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import aiohttp

from exporter.contract.exposition import Exposition, ExpositionError, parse_bytes
from exporter.vllm.reading import SELECTION, PodReading, ReadingError, read
from exporter.vllm.targets import redact

# Ask for the text format: prometheus_client >= 0.23 rewrites 'vllm:' names when
# OpenMetrics is negotiated (client_python #1177).
ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"

REASONS = ("timeout", "connect", "http_status", "body_too_large", "parse", "invalid", "limit", "derive")
"""``limit``: the reading exceeds a per-target bound (models, engines, series, label value size);
``derive``: its values cannot be derived (an overflow, a non-finite result)."""


class ScrapeError(Exception):
    """A scrape failed; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        assert reason in REASONS
        self.reason = reason


def _scrub(message: str, url: str) -> str:
    """A library's error text with the URL's user info removed (it may quote the URL)."""
    netloc = urlsplit(url).netloc
    if "@" in netloc:
        message = message.replace(netloc.rpartition("@")[0], "***")
    return message


async def fetch(session: aiohttp.ClientSession, url: str, *, timeout: float, max_bytes: int) -> bytes:
    """GET ``url``; the body, or ScrapeError. Never reads more than ``max_bytes`` + 1.

    Messages name the URL without its user info (a password in a target URL never reaches a log).
    """
    shown = redact(url)
    try:
        async with asyncio.timeout(timeout):
            async with session.get(url, headers={"Accept": ACCEPT}, allow_redirects=False) as resp:
                if resp.status != 200:
                    raise ScrapeError("http_status", f"{shown} answered HTTP {resp.status}")
                if resp.content_length is not None and resp.content_length > max_bytes:
                    raise ScrapeError("body_too_large", f"{shown} announced {resp.content_length} bytes "
                                                        f"(limit {max_bytes})")
                chunks, size = [], 0
                async for chunk in resp.content.iter_any():
                    size += len(chunk)
                    if size > max_bytes:
                        raise ScrapeError("body_too_large", f"{shown} sent more than {max_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
    except TimeoutError as exc:
        raise ScrapeError("timeout", f"{shown} did not answer within {timeout:.3g}s") from exc
    except aiohttp.ClientPayloadError as exc:
        raise ScrapeError("parse", f"{shown} sent a broken body: {_scrub(str(exc), url)}") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise ScrapeError("connect", f"{shown}: {_scrub(str(exc), url)}") from exc


def decode(body: bytes) -> PodReading:
    """Parse and normalize a body; ScrapeError('parse'|'invalid') on bad input."""
    try:
        exposition: Exposition = parse_bytes(body, only=SELECTION)
    except ExpositionError as exc:
        raise ScrapeError("parse", str(exc)) from exc
    try:
        reading = read(exposition)
    except ReadingError as exc:
        raise ScrapeError("invalid", str(exc)) from exc
    if not reading.engines:
        raise ScrapeError("invalid", "no vLLM series in the exposition (is this a vLLM /metrics?)")
    return reading
