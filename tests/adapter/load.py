"""Many concurrent TLS clients against a real adapter process: errors, latency and the adapter's memory.

Shared by the bounded CI check (tests/adapter/test_load.py) and the full run
(``bench/bench_adapter.py tls-load``, 1,000 clients for 60 s). Each client is one
kept-alive TLS connection with a client certificate, asking a Pods metric in a
closed loop; every answer that is not a 200 with items, and every exception, is
an error. RSS is sampled in the adapter process before (after a warm-up), during
and after the load (once the clients have left).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
import psutil

from tests.adapter.helpers import AdapterProcess

MiB = 2**20
PODS_QUERY = ("/apis/custom.metrics.k8s.io/v1beta2/namespaces/llm/pods/%2A/kvscale_vllm_requests_waiting"
              "?labelSelector=app%3Dvllm")


@dataclass
class LoadResult:
    clients: int
    seconds: float
    requests: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    baseline_rss: float = 0.0
    peak_rss: float = 0.0
    after_rss: float = 0.0

    def summary(self) -> str:
        lat = sorted(self.latencies) or [0.0]
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        return (f"{self.clients} TLS clients for {self.seconds:g} s: {self.requests} requests "
                f"({self.requests / self.seconds:.0f}/s), errors {dict(self.errors) or 0}; latency p50 "
                f"{statistics.median(lat) * 1000:.1f} ms p99 {p99 * 1000:.1f} ms; RSS baseline "
                f"{self.baseline_rss / MiB:.0f} MiB, peak {self.peak_rss / MiB:.0f} MiB, after "
                f"{self.after_rss / MiB:.0f} MiB")


def rss(served: AdapterProcess) -> float:
    return float(psutil.Process(served.proc.pid).memory_info().rss)


async def settled_rss(served: AdapterProcess, ceiling: float, timeout: float = 20.0) -> float:
    """RSS once it is at or under ``ceiling`` (memory is handed back shortly after clients leave)."""
    deadline = time.monotonic() + timeout
    while (now := rss(served)) > ceiling and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
    return now


async def tls_load(served: AdapterProcess, *, clients: int, seconds: float, path: str = PODS_QUERY,
                   settle_margin: float = 25 * MiB) -> LoadResult:
    result = LoadResult(clients, seconds)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ssl=served.context()),
                                     timeout=timeout) as warmup:
        for _ in range(50):  # the first answers allocate caches for good: part of the baseline
            async with warmup.get(f"https://127.0.0.1:{served.port}{path}") as resp:
                await resp.read()
    await asyncio.sleep(0.5)
    result.baseline_rss = rss(served)
    stop = time.monotonic() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                async with session.get(f"https://127.0.0.1:{served.port}{path}") as resp:
                    body = await resp.json(content_type=None)
                    ok = resp.status == 200 and bool(body.get("items"))
                    if not ok:
                        result.errors[f"HTTP {resp.status}"] += 1
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                result.errors[type(exc).__name__] += 1
                continue
            result.requests += 1
            result.latencies.append(time.perf_counter() - started)

    async def sample() -> None:
        while time.monotonic() < stop:
            result.peak_rss = max(result.peak_rss, rss(served))
            await asyncio.sleep(0.25)

    # One session per client: one kept-alive connection each, as 1,000 separate clients would hold.
    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1, ssl=served.context()),
                                      timeout=timeout) for _ in range(clients)]
    try:
        await asyncio.gather(sample(), *(client(s) for s in sessions))
    finally:
        for session in sessions:
            await session.close()
    result.after_rss = await settled_rss(served, result.baseline_rss + settle_margin)
    return result
