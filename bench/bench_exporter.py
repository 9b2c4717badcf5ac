"""Exporter benchmark: reader speed, one collection of 8 targets, /metrics under load, memory.

``.venv/bin/python bench/bench_exporter.py [--quick]`` prints one table: medians, and p95/p99 where named.
What is compared is measured side by side in one run, interleaved (A, B, A, B...)
so both sides share the machine's noise. The vLLM targets are separate
``python -m simulator.target`` processes, one per pod as on a node: on a 2-core
machine they compete with the exporter for CPU, so a cycle's wall time includes
that contention and its CPU time (the exporter's own process) does not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import Exporter
from exporter.contract.exposition import parse
from exporter.settings import Settings
from exporter.vllm.collector import VllmCollector
from exporter.vllm.scrape import decode
from exporter.vllm.series import VllmPolicy
from exporter.vllm.targets import StaticTargets, parse_static

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "vllm" / "v0.33.0-dp2-optional-features.prom"
TARGETS, SCRAPERS, READER_LINES, GPU_PRICE = 8, 20, 5000, 2.5
# The exporter's default interval (1 s). The window is shortened from 60 s to 12 s so it
# fills before the timed part; the derivation keeps running totals, so its cost does not
# grow with the number of readings in the window.
INTERVAL, WINDOW = 1.0, 12.0
EXPORTER_FLAGS = ("--nvml", "off", "--interval", str(INTERVAL), "--window", str(WINDOW), "--scrape-timeout",
                  "0.4", "--gpu-price-per-hour", str(GPU_PRICE), "--log-level", "warning")
PACED_PERIOD = 0.05  # seconds between one paced scraper's requests: 400 req/s from 20 scrapers
_MODEL_RE = re.compile(r'model_name="([^"]*)"')
_ENGINE_RE = re.compile(r'engine="(\d+)"')


class BenchError(RuntimeError):
    """The benchmark could not measure what it claims (a target down, a process dead)."""


@dataclass(frozen=True)
class Row:
    name: str
    value: float
    unit: str
    target: str = ""
    ok: bool | None = None


@dataclass(frozen=True)
class Iterations:
    reader_runs: int
    cycles: int
    warmup: int  # cycles before timing; they fill the window, as in a long-running exporter
    requests: int  # per scraper
    settle_s: float  # exporter run time before the load: fills its window


FULL = Iterations(reader_runs=21, cycles=30, warmup=12, requests=200, settle_s=WINDOW + 2)
QUICK = Iterations(reader_runs=3, cycles=3, warmup=1, requests=10, settle_s=1.0)


def _per_engine(line: str) -> bool:
    return not line.startswith("#") and ('model_name="' in line or 'engine="' in line)


def replicate(text: str, lines: int) -> str:
    """``text`` grown to about ``lines`` lines by repeating every per-engine sample under distinct
    model_name/engine values (copy i of engine "0" is "i0": unique for up to 9 copies of DP < 10)."""
    per = sum(1 for line in text.splitlines() if _per_engine(line))
    replicas = max(1, round((lines - len(text.splitlines()) + per) / per))
    out: list[str] = []
    for line in text.splitlines():
        out.append(line)  # copies follow in their family's block, as an exporter writes them
        out.extend(_ENGINE_RE.sub(rf'engine="{i}\1"', _MODEL_RE.sub(rf'model_name="\1-r{i}"', line))
                   for i in range(1, replicas if _per_engine(line) else 1))
    return "\n".join(out) + "\n"


def interleaved(funcs: Sequence[Callable[[], object]], runs: int) -> list[list[float]]:
    """Seconds per call of each function, the functions alternating run after run."""
    times: list[list[float]] = [[] for _ in funcs]
    for _ in range(runs):
        for func, out in zip(funcs, times, strict=True):
            start = time.perf_counter()
            func()
            out.append(time.perf_counter() - start)
    return times


def _ms(values: Sequence[float], q: float = 0.5) -> float:
    """The q-quantile in milliseconds (the median by default; nearest rank otherwise)."""
    if q == 0.5:
        return statistics.median(values) * 1e3
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1e3


def reader_rows(runs: int) -> list[Row]:
    small = FIXTURE.read_text(encoding="utf-8")
    big = replicate(small, READER_LINES)
    n_big, n_small, body = big.count("\n"), small.count("\n"), small.encode()
    full: list[Callable[[], object]] = [lambda: parse(big), lambda: list(text_string_to_metric_families(big))]
    ours, theirs = interleaved(full, runs)
    scrape: list[Callable[[], object]] = [lambda: decode(body), lambda: list(text_string_to_metric_families(small))]
    sel, theirs_small = interleaved(scrape, runs)
    ratio, sel_ratio = _ms(theirs) / _ms(ours), _ms(theirs_small) / _ms(sel)
    return [
        Row(f"reader: exposition.parse, full, {n_big} lines", _ms(ours), "ms"),
        Row(f"reader: prometheus_client parser, {n_big} lines", _ms(theirs), "ms"),
        Row("reader: speed-up of the full parse", ratio, "x", ">= 5", ratio >= 5),
        Row(f"reader: scrape.decode (selective), DP=2 fixture {n_small} lines", _ms(sel), "ms"),
        Row(f"reader: prometheus_client parser, DP=2 fixture {n_small} lines", _ms(theirs_small), "ms"),
        Row("reader: speed-up of scrape.decode", sel_ratio, "x"),
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback never goes via a proxy


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> bytes:
    """The body of ``url`` once it answers; BenchError if ``proc`` dies or ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with _OPENER.open(url, timeout=5.0) as resp:
                return bytes(resp.read())
        except OSError as exc:
            if proc.poll() is not None:
                raise BenchError(f"{proc.args!r} exited with {proc.returncode}") from exc
            if time.monotonic() > deadline:
                raise BenchError(f"{url} not ready after {timeout:.0f}s") from exc
            time.sleep(0.1)


def spawn(stack: contextlib.ExitStack, *args: str) -> subprocess.Popen[bytes]:
    """``python ARGS...`` in the repository, terminated and reaped when ``stack`` closes."""
    proc = stack.enter_context(subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=subprocess.DEVNULL,
                                                stderr=subprocess.DEVNULL))
    stack.callback(proc.terminate)  # runs before Popen.__exit__ waits for it
    return proc


def start_targets(stack: contextlib.ExitStack, count: int) -> list[str]:
    """``count`` simulated vLLM pods serving the DP=2 fixture; their target specs once they answer."""
    ports = [free_port() for _ in range(count)]
    # On a GPU node vLLM renders /metrics on its own cores; here the 8 targets share the 2
    # cores with the exporter, so they re-render only every 2 s (the counters still move
    # within each window) to keep their CPU out of the exporter's figures.
    procs = [spawn(stack, "-m", "simulator.target", "--listen", f"127.0.0.1:{port}", "--fixture", str(FIXTURE),
                   "--cache-seconds", "2")
             for port in ports]
    for port, proc in zip(ports, procs, strict=True):
        wait_ready(f"http://127.0.0.1:{port}/metrics", proc)
    return [f"bench/pod-{i}=http://127.0.0.1:{port}/metrics" for i, port in enumerate(ports)]


def _check_up(values: Sequence[float], expected: int, where: str) -> None:
    if list(values) != [1.0] * expected:
        raise BenchError(f"{where}: kvscale_vllm_up is {list(values)}, expected {expected} targets up")


async def cycle_rows(specs: Sequence[str], it: Iterations) -> list[Row]:
    """Time ``Exporter.run_cycle`` built as ``exporter.app.serve`` builds it, one cycle per INTERVAL."""
    # Generous deadlines: a timed-out scrape would shorten the cycle (and fail the up check).
    settings = Settings(vllm_target=list(specs), nvml="off", interval=5 * INTERVAL, window=WINDOW,
                        gpu_price_per_hour=GPU_PRICE)
    policy = VllmPolicy(window_seconds=settings.window, quantiles=tuple(settings.quantiles),
                        thresholds=settings.policy, gpu_price_per_hour=settings.gpu_price_per_hour or None,
                        default_gpus_per_pod=settings.gpus_per_pod)
    source = StaticTargets([parse_static(spec) for spec in settings.vllm_target])
    connector = aiohttp.TCPConnector(limit=64, limit_per_host=2, force_close=False)
    walls: list[float] = []
    cpus: list[float] = []
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        vllm = VllmCollector(source=source, session=session, policy=policy,
                             scrape_timeout=settings.scrape_timeout, max_body_bytes=settings.max_body_bytes)
        exporter = Exporter(settings=settings, vllm=vllm)
        for i in range(it.warmup + it.cycles):
            await asyncio.sleep(INTERVAL)  # targets idle between cycles, as between real intervals
            wall, cpu = time.perf_counter(), time.process_time()
            series = await exporter.run_cycle()
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
            _check_up([s.value for s in series if s.family == "kvscale_vllm_up"], len(specs), f"cycle {i}")
    walls, cpus = walls[it.warmup:], cpus[it.warmup:]
    name = f"collection: run_cycle, {len(specs)} DP=2 targets"
    return [
        Row(f"{name}, wall median", _ms(walls), "ms", "< 50", _ms(walls) < 50),
        Row(f"{name}, wall p95 ({len(walls)} cycles)", _ms(walls, 0.95), "ms"),
        Row(f"{name}, exporter CPU median", _ms(cpus), "ms"),
    ]


def load(url: str, requests: int, period: float) -> tuple[list[float], float]:
    """Latencies (s) and req/s of :data:`SCRAPERS` scrapers GETting ``url`` ``requests`` times each:
    back to back (``period`` 0, a closed loop) or every ``period`` seconds from evenly spread phases."""
    return asyncio.run(_load(url, requests, period))


async def _load(url: str, requests: int, period: float) -> tuple[list[float], float]:
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=SCRAPERS), trust_env=False) as session:

        async def scraper(index: int) -> None:
            first = time.perf_counter() + period * index / SCRAPERS
            for k in range(requests):
                if period:
                    await asyncio.sleep(max(0.0, first + k * period - time.perf_counter()))
                start = time.perf_counter()
                async with session.get(url) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise BenchError(f"{url} answered HTTP {resp.status}")
                latencies.append(time.perf_counter() - start)

        started = time.perf_counter()
        await asyncio.gather(*(scraper(i) for i in range(SCRAPERS)))
        return latencies, len(latencies) / (time.perf_counter() - started)


def _cpu_ns(pid: int) -> int:
    """CPU time of the process's main thread in ns (Linux schedstat: finer than the 10 ms of cpu_times)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def serve_rows(stack: contextlib.ExitStack, specs: Sequence[str], it: Iterations) -> list[Row]:
    """The real exporter process: /metrics latency from a separate load process, then its RSS."""
    port = free_port()
    proc = spawn(stack, "-m", "exporter", "--listen", f"127.0.0.1:{port}", *EXPORTER_FLAGS,
                 *(arg for spec in specs for arg in ("--vllm-target", spec)))
    url = f"http://127.0.0.1:{port}/metrics"
    wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
    time.sleep(it.settle_s)
    body = wait_ready(url, proc)
    _check_up([v for _, v in parse(body.decode()).samples.get("kvscale_vllm_up", [])], len(specs), "exporter")
    # The load generator runs in its own process: the exporter's CPU is not shared with it.
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        cpu = _cpu_ns(proc.pid)
        closed, closed_rate = pool.submit(load, url, it.requests, 0.0).result(timeout=300)
        cpu_per_request = (_cpu_ns(proc.pid) - cpu) / 1e9 / len(closed)
        paced, _ = pool.submit(load, url, it.requests, PACED_PERIOD).result(timeout=300)
    rss = psutil.Process(proc.pid).memory_info().rss / 2**20
    name = f"/metrics, {SCRAPERS} scrapers x {it.requests}"
    paced_name = f"{name} paced at {1 / PACED_PERIOD:.0f}/s each"
    return [
        Row(f"{name} back to back ({len(body) // 1024} KiB body), p50", _ms(closed), "ms"),
        Row(f"{name} back to back, p99", _ms(closed, 0.99), "ms", "< 5", _ms(closed, 0.99) < 5),
        Row(f"{name} back to back, throughput", closed_rate, "req/s"),
        Row("exporter CPU per request back to back (collection included)", cpu_per_request * 1e6, "us"),
        Row(f"{paced_name}, p50", _ms(paced), "ms"),
        Row(f"{paced_name}, p99", _ms(paced, 0.99), "ms", "< 5", _ms(paced, 0.99) < 5),
        Row(f"exporter process RSS, {len(specs)} targets, after the load", rss, "MiB", "< 80", rss < 80),
    ]


def import_rss(modules: str) -> float:
    """RSS (MiB) of a fresh interpreter that imported ``modules`` (read from /proc: no extra import)."""
    code = f"import os, {modules}; print(int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGESIZE'))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, check=True, timeout=120)
    return int(done.stdout) / 2**20


def import_rows() -> list[Row]:
    static, kube = import_rss("exporter.app"), import_rss("exporter.app, exporter.vllm.kube_targets, kubernetes.client")
    return [Row("import RSS: exporter.app", static, "MiB"),
            Row("import RSS: + exporter.vllm.kube_targets, kubernetes.client", kube, "MiB"),
            Row("import RSS: cost of the kubernetes client (--kubernetes on)", kube - static, "MiB")]


def run_all(it: Iterations) -> list[Row]:
    rows = reader_rows(it.reader_runs)
    with contextlib.ExitStack() as stack:
        specs = start_targets(stack, TARGETS)
        rows += asyncio.run(cycle_rows(specs, it))
        rows += serve_rows(stack, specs, it)
    return rows + import_rows()


def table(rows: Sequence[Row]) -> str:
    lines = [f"{'measurement':<74} {'value':>9}  {'unit':<5}  {'target':<6}  met"]
    for r in rows:
        met = "" if r.ok is None else "yes" if r.ok else "MISSED"
        lines.append(f"{r.name:<74} {r.value:>9.3f}  {r.unit:<5}  {r.target:<6}  {met}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--quick", action="store_true", help="few iterations: a smoke test, not figures")
    quick = p.parse_args(argv).quick
    before, started = os.getloadavg(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = run_all(QUICK if quick else FULL)
    print(f"kvscale exporter benchmark{' --quick' if quick else ''}, {started}: {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, load average {before[0]:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
