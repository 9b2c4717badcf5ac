"""The exporter under load: concurrent scrapers plus hostile connections, against the real processes.

``.venv/bin/python bench/load_exporter.py [--scrapers 100] [--hostile 1200] [--seconds 60]`` starts a
simulated vLLM target and ``kvscale-exporter`` as separate processes, then for ``--seconds`` runs
``--scrapers`` clients scraping ``/metrics`` back to back (keep-alive) beside ``--hostile``
connections that send half a request and hang, each reopened a second after the server closes it. It
reports what the scrapers got, whether a collection was lost (the target counts the exporter's
scrapes; the exporter logs no overrun and no failed scrape) and the exporter's memory before, at
peak and after the load ends. tests/bench/test_load_exporter.py runs a bounded version in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "vllm" / "v0.33.0-single-engine.prom"
HALF_REQUEST = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: "
RECONNECT_SECONDS = 1.0
UP = b'kvscale_vllm_up{model_name="tiny-llama",namespace="ns",pod="p"} 1.0'


@dataclass
class LoadResult:
    seconds: float
    interval: float
    scrapes_ok: int = 0
    scrapes_failed: int = 0
    scrapes_stale: int = 0  # answered 200 without the target up
    latencies: list[float] = field(default_factory=list)
    hostile_opened: int = 0
    hostile_closed_by_server: int = 0
    target_scrapes: int = 0  # the exporter's scrapes of the target during the load: one per collection
    log_problems: list[str] = field(default_factory=list)
    rss_before: int = 0
    rss_peak: int = 0
    rss_after: int = 0

    @property
    def collections_expected(self) -> int:
        """Cycles due while the target's count ran (the count spans the whole load)."""
        return int(self.seconds / self.interval)

    def rows(self) -> list[tuple[str, str]]:
        lat = sorted(self.latencies) or [0.0]
        mib = 1 << 20
        return [
            ("scrapes answered 200 / failed / 200 but stale", f"{self.scrapes_ok} / {self.scrapes_failed} / "
                                                              f"{self.scrapes_stale}"),
            ("scrape latency p50 / p99 (ms)", f"{1000 * statistics.median(lat):.1f} / "
                                              f"{1000 * lat[int(0.99 * (len(lat) - 1))]:.1f}"),
            ("hostile connections opened / closed by the exporter", f"{self.hostile_opened} / "
                                                                   f"{self.hostile_closed_by_server}"),
            ("collections during the load / expected", f"{self.target_scrapes} / {self.collections_expected}"),
            ("exporter log: overruns, timeouts, failed scrapes", str(len(self.log_problems))),
            ("exporter RSS before / peak / after (MiB)", f"{self.rss_before / mib:.0f} / {self.rss_peak / mib:.0f} / "
                                                         f"{self.rss_after / mib:.0f}"),
        ]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} never answered 200")
        time.sleep(0.1)


async def _scraper(url: str, until: float, result: LoadResult) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        while time.monotonic() < until:
            started = time.perf_counter()
            try:
                async with session.get(url) as resp:
                    body = await resp.read()
                    ok = resp.status == 200
            except (aiohttp.ClientError, OSError, TimeoutError):
                ok, body = False, b""
            if not ok:
                result.scrapes_failed += 1
                await asyncio.sleep(0.05)
                continue
            result.latencies.append(time.perf_counter() - started)
            result.scrapes_ok += 1
            if UP not in body:
                result.scrapes_stale += 1


async def _hostile(host: str, port: int, until: float, result: LoadResult) -> None:
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        result.hostile_opened += 1
        try:
            writer.write(HALF_REQUEST)
            with contextlib.suppress(OSError, TimeoutError):
                if await asyncio.wait_for(reader.read(), max(0.01, until - time.monotonic())) == b"":
                    result.hostile_closed_by_server += 1
        except OSError:
            result.hostile_closed_by_server += 1
        finally:
            writer.close()
        await asyncio.sleep(RECONNECT_SECONDS)  # a slowloris client comes back, not a connect flood


def serve_target(port: int) -> None:
    """A vLLM target that counts the scrapes it answers (``GET /count``), in its own process."""
    from aiohttp import web

    body, hits = FIXTURE.read_bytes(), [0]

    async def metrics(request: web.Request) -> web.Response:
        hits[0] += 1
        return web.Response(body=body, content_type="text/plain")

    async def count(request: web.Request) -> web.Response:
        return web.Response(text=str(hits[0]))

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/count", count)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _count(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=5) as resp:
        return int(resp.read())


async def _load(listen: str, pid: int, result: LoadResult, *, scrapers: int, hostile: int, seconds: float) -> None:
    proc = psutil.Process(pid)
    host, _, port = listen.rpartition(":")
    url = f"http://{listen}/metrics"
    until = time.monotonic() + seconds
    tasks = [asyncio.create_task(_hostile(host, int(port), until, result)) for _ in range(hostile)]
    tasks += [asyncio.create_task(_scraper(url, until, result)) for _ in range(scrapers)]
    while time.monotonic() < until:
        result.rss_peak = max(result.rss_peak, proc.memory_info().rss)
        await asyncio.sleep(0.2)
    await asyncio.gather(*tasks)


def run(*, scrapers: int, hostile: int, seconds: float, interval: float = 1.0, idle_timeout: float = 2.0,
        max_connections: int = 256) -> LoadResult:
    """Start a target and an exporter, load them, and measure (see the module docstring)."""
    result = LoadResult(seconds=seconds, interval=interval)
    target_port, listen = _free_port(), f"127.0.0.1:{_free_port()}"
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        log = Path(tmp) / "exporter.log"
        target = stack.enter_context(subprocess.Popen(
            [sys.executable, "-m", "bench.load_exporter", "--serve-target", str(target_port)], cwd=REPO,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        stack.callback(target.terminate)
        _wait(f"http://127.0.0.1:{target_port}/metrics", target)
        exporter = stack.enter_context(subprocess.Popen(
            [sys.executable, "-m", "exporter", "--listen", listen, "--nvml", "off", "--kubernetes", "off",
             "--vllm-target", f"ns/p=http://127.0.0.1:{target_port}/metrics", "--interval", str(interval),
             "--scrape-timeout", str(interval * 0.8), "--window", "10", "--window-min-ratio", "0.1",
             "--http-idle-timeout", str(idle_timeout), "--http-max-connections", str(max_connections),
             "--log-level", "warning"], cwd=REPO, stdout=subprocess.DEVNULL,
            stderr=stack.enter_context(log.open("wb"))))
        stack.callback(exporter.terminate)
        _wait(f"http://{listen}/healthz", exporter)
        time.sleep(3 * interval)
        result.rss_before = psutil.Process(exporter.pid).memory_info().rss
        before, started, logged = _count(target_port), time.monotonic(), log.stat().st_size
        asyncio.run(_load(listen, exporter.pid, result, scrapers=scrapers, hostile=hostile, seconds=seconds))
        result.target_scrapes = _count(target_port) - before
        result.seconds = time.monotonic() - started
        time.sleep(idle_timeout + 1)  # the last hostile connections time out
        result.rss_after = psutil.Process(exporter.pid).memory_info().rss
        if exporter.poll() is not None:
            result.log_problems.append(f"exporter exited with {exporter.returncode}")
        text = log.read_bytes()[logged:].decode(errors="replace")  # what the exporter logged under the load
        result.log_problems += [line for line in text.splitlines()
                                if any(word in line for word in ("overran", "timed out", "failed", "Traceback"))]
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scrapers", type=int, default=100)
    p.add_argument("--hostile", type=int, default=1200)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--interval", type=float, default=1.0, help="the exporter's collection interval (its default)")
    p.add_argument("--serve-target", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve_target:
        serve_target(args.serve_target)
        return
    result = run(scrapers=args.scrapers, hostile=args.hostile, seconds=args.seconds, interval=args.interval)
    for name, value in result.rows():
        print(f"{name:<55} {value}")
    for line in result.log_problems[:10]:
        print("  log:", line)


if __name__ == "__main__":
    main()
