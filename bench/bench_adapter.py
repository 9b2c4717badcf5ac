"""Adapter benchmarks: throughput/latency of a pods query, and freshness of a queue spike.

    .venv/bin/python bench/bench_adapter.py throughput   # direct, 500 pods, query selects 100
    .venv/bin/python bench/bench_adapter.py freshness    # spike -> visible through the adapter, direct vs prometheus
    .venv/bin/python bench/bench_adapter.py tls-load     # 1,000 TLS clients for 60 s: errors, latency, RSS

Throughput: the adapter is a separate process (`python -m adapter`, direct source,
plain HTTP and TLS with a client certificate); 500 pods are served by 63 fake node
exporters (8 GPUs a node) in a third process; the load generator (aiohttp,
closed loop, keep-alive) runs here. Prints req/s and latency percentiles.

Freshness: a vLLM-format target whose `vllm:num_requests_waiting` the bench sets,
a real exporter process over it, and two adapters side by side: direct (reading
the exporter) and prometheus (a real Prometheus scraping the exporter every 1 s).
Each round sets the queue to a new value and polls both adapters every 20 ms
until they show it. Prints p50/p95 of the delays.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web  # noqa: E402

from adapter.quantity import parse_milli  # noqa: E402
from tests.conftest import PrometheusServer, free_port  # noqa: E402

PYTHON = sys.executable
CUSTOM = "/apis/custom.metrics.k8s.io/v1beta2"
VLLM_FIXTURE = REPO / "tests" / "fixtures" / "vllm" / "v0.33.0-single-engine.prom"


def node_exposition(node: int, pods: range) -> bytes:
    lines = []
    for family, value in (("kvscale_vllm_up", "1"), ("kvscale_vllm_requests_waiting", "{w}"),
                          ("kvscale_vllm_requests_running", "8"), ("kvscale_vllm_kv_cache_usage_ratio", "0.62")):
        lines.append(f"# TYPE {family} gauge")
        for i in pods:
            lines.append(f'{family}{{namespace="llm",pod="vllm-{i:03d}",model_name="m"}} {value.format(w=i % 7)}')
    lines.append("# TYPE kvscale_vllm_ttft_seconds gauge")
    for i in pods:
        for q in ("0.5", "0.9", "0.95", "0.99"):
            lines.append(f'kvscale_vllm_ttft_seconds{{namespace="llm",pod="vllm-{i:03d}",model_name="m",'
                         f'quantile="{q}"}} 0.{i % 9 + 1}')
    return ("\n".join(lines) + "\n").encode()


def serve_exporters(port: int, pods: int, per_node: int) -> None:
    bodies = {n: node_exposition(n, range(n * per_node, min(pods, (n + 1) * per_node)))
              for n in range((pods + per_node - 1) // per_node)}

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=bodies[int(request.match_info["node"])], content_type="text/plain")

    app = web.Application()
    app.router.add_get("/node/{node}/metrics", handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


def pod_list(pods: int, selected: int) -> str:
    items = [{"metadata": {"name": f"vllm-{i:03d}", "namespace": "llm",
                           "labels": {"app": "vllm", "slice": "a" if i < selected else "b"}},
              "status": {"phase": "Running"}} for i in range(pods)]
    return json.dumps({"apiVersion": "v1", "kind": "PodList", "items": items})


def wait_http(url: str, ctx: ssl.SSLContext | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2, context=ctx):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


async def load(url: str, *, seconds: float, concurrency: int, ctx: ssl.SSLContext | None) -> list[float]:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    async with ClientSession(connector=TCPConnector(limit=concurrency, ssl=ctx or False)) as session:
        async def worker() -> None:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                async with session.get(url) as resp:
                    await resp.read()
                    assert resp.status == 200, resp.status
                latencies.append(time.perf_counter() - t0)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def wrk(url: str, *, seconds: float, concurrency: int) -> tuple[float, float, float]:
    """(req/s, p50 ms, p99 ms) from wrk (Debian package `wrk`): a C load generator, one thread."""
    out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    fields = {}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            fields["rate"] = float(parts[1])
        elif len(parts) == 2 and parts[0] in ("50%", "99%"):
            fields[parts[0]] = _wrk_ms(parts[1])
        elif "Non-2xx" in line:
            raise SystemExit(f"wrk saw errors: {line}")
    return fields["rate"], fields["50%"], fields["99%"]


def _wrk_ms(text: str) -> float:
    """wrk prints latencies as 812.00us, 1.46ms or 1.02s."""
    for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    raise ValueError(f"unknown wrk latency {text!r}")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def wait_served(url: str, ctx: ssl.SSLContext | None, selected: int) -> None:
    """Until the adapter's first refresh has read every exporter."""
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
                if len(json.load(resp)["items"]) == selected:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("adapter did not serve all selected pods in 30 s")
        time.sleep(0.2)


def measure(name: str, generator: str, url: str, ctx: ssl.SSLContext | None, args: argparse.Namespace) -> None:
    rates, p50s, p99s = [], [], []
    for run in range(args.runs + 1):  # the first run warms up and is not counted
        if generator == "wrk":
            rate, p50, p99 = wrk(url, seconds=args.seconds, concurrency=args.concurrency)
        else:
            lat = asyncio.run(load(url, seconds=args.seconds, concurrency=args.concurrency, ctx=ctx))
            rate, p50, p99 = len(lat) / args.seconds, pct(lat, 50) * 1000, pct(lat, 99) * 1000
        if run:
            rates.append(rate)
            p50s.append(p50)
            p99s.append(p99)
    print(f"  {name:16s} {generator:8s} req/s median {statistics.median(rates):6.0f} "
          f"(runs {', '.join(f'{r:.0f}' for r in rates)})  p50 {statistics.median(p50s):5.2f} ms  "
          f"p99 {statistics.median(p99s):5.2f} ms")


def throughput(args: argparse.Namespace) -> None:
    import trustme

    tmp = Path(tempfile.mkdtemp(prefix="kvscale-bench-"))
    (tmp / "pods.json").write_text(pod_list(args.pods, args.selected))
    exp_port = free_port()
    nodes = (args.pods + args.per_node - 1) // args.per_node
    procs = [subprocess.Popen([PYTHON, __file__, "_exporters", str(exp_port), str(args.pods), str(args.per_node)])]
    server_ca, client_ca = trustme.CA(), trustme.CA()
    server_ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(tmp / "server.pem"))
    client_ca.cert_pem.write_to_path(str(tmp / "client-ca.pem"))
    client_ctx = ssl.create_default_context()
    server_ca.configure_trust(client_ctx)
    client_ca.issue_cert(common_name="bench").configure_cert(client_ctx)
    try:
        wait_http(f"http://127.0.0.1:{exp_port}/node/0/metrics")
        common = ["--source", "direct", "--pods-file", str(tmp / "pods.json"), "--bind-address", "127.0.0.1"]
        for n in range(nodes):
            common += ["--exporter-url", f"http://127.0.0.1:{exp_port}/node/{n}"]
        modes: list[tuple[str, list[str], ssl.SSLContext | None]] = [
            ("http", ["--insecure-http"], None),
            ("tls+client-cert", ["--tls-cert-file", str(tmp / "server.pem"), "--tls-private-key-file",
                                 str(tmp / "server.pem"), "--client-ca-file", str(tmp / "client-ca.pem")], client_ctx),
        ]
        print(f"direct source, {args.pods} pods on {nodes} exporters, query selects {args.selected}; "
              f"{args.concurrency} connections, {args.seconds:.0f} s per run, {args.runs} runs")
        for name, flags, ctx in modes:
            port = free_port()
            adapter = subprocess.Popen([PYTHON, "-m", "adapter", "--secure-port", str(port), *common, *flags,
                                        "--log-level", "warning"])
            procs.append(adapter)
            scheme = "https" if ctx else "http"
            base = f"{scheme}://127.0.0.1:{port}"
            url = f"{base}{CUSTOM}/namespaces/llm/pods/%2A/kvscale_vllm_requests_waiting?labelSelector=slice%3Da"
            wait_served(url, ctx, args.selected)
            generators = ["aiohttp"] + (["wrk"] if ctx is None and shutil.which("wrk") else [])
            for generator in generators:
                measure(name, generator, url, ctx, args)
            adapter.send_signal(signal.SIGTERM)
            adapter.wait(10)
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


# ---- freshness ---------------------------------------------------------------------------------------------

class SpikeTarget:
    """A vLLM-format /metrics whose num_requests_waiting is set by the bench (POST /set?waiting=N)."""

    def __init__(self) -> None:
        self.text = VLLM_FIXTURE.read_text()
        self.waiting = 0.0

    def body(self) -> bytes:
        out = []
        for line in self.text.splitlines():
            spike = line.startswith("vllm:num_requests_waiting{")
            out.append(line.rsplit(" ", 1)[0] + f" {self.waiting}" if spike else line)
        return ("\n".join(out) + "\n").encode()


def serve_target(port: int) -> None:
    target = SpikeTarget()

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=target.body(), content_type="text/plain", charset="utf-8")

    async def set_waiting(request: web.Request) -> web.Response:
        target.waiting = float(request.query["waiting"])
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/set", set_waiting)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


async def read_waiting(session: ClientSession, url: str) -> float | None:
    try:
        async with session.get(url, timeout=ClientTimeout(total=2)) as resp:
            if resp.status != 200:
                return None
            body: dict[str, Any] = await resp.json()
    except (TimeoutError, OSError, ValueError):
        return None
    return parse_milli(body["items"][0]["value"]) / 1000


async def spike_rounds(target: str, adapters: dict[str, str], rounds: int, period: float) -> dict[str, list[float]]:
    """Each round waits a random fraction of the slowest loop's period first, so spikes land at random
    phases of the refresh and scrape loops instead of right after one."""
    rng = random.Random(7)
    delays: dict[str, list[float]] = {name: [] for name in adapters}
    async with ClientSession() as session:
        for r in range(rounds):
            value = float(10 + r)
            async with session.post(f"{target}/set?waiting={value:g}"):
                pass
            t0 = time.perf_counter()
            pending = dict(adapters)
            while pending:
                for name, url in list(pending.items()):
                    if await read_waiting(session, url) == value:
                        delays[name].append(time.perf_counter() - t0)
                        del pending[name]
                if time.perf_counter() - t0 > 60:
                    raise SystemExit(f"round {r}: {sorted(pending)} never showed {value}")
                await asyncio.sleep(0.02)
            await asyncio.sleep(rng.uniform(0, period))
    return delays


def freshness(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="kvscale-bench-"))
    (tmp / "pods.json").write_text(json.dumps({"kind": "PodList", "items": [
        {"metadata": {"name": "vllm-a", "namespace": "demo", "labels": {"app": "vllm"}}}]}))
    target_port, exporter_port = free_port(), free_port()
    procs = [subprocess.Popen([PYTHON, __file__, "_target", str(target_port)])]
    prometheus = None
    try:
        wait_http(f"http://127.0.0.1:{target_port}/metrics")
        procs.append(subprocess.Popen(
            [PYTHON, "-m", "exporter", "--listen", f"127.0.0.1:{exporter_port}", "--nvml", "off", "--interval",
             str(args.exporter_interval), "--scrape-timeout", str(args.exporter_interval / 2),
             "--vllm-target", f"demo/vllm-a=http://127.0.0.1:{target_port}/metrics",
             "--log-level", "warning"], cwd=REPO))
        wait_http(f"http://127.0.0.1:{exporter_port}/readyz")
        scrape = f"{args.prometheus_scrape_interval:g}s"
        prometheus = PrometheusServer({
            "global": {"scrape_interval": scrape, "evaluation_interval": scrape},
            "scrape_configs": [{"job_name": "kvscale-exporter", "honor_labels": True,
                                "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}]})
        adapters = {}
        for source, flags in (("direct", ["--exporter-url", f"http://127.0.0.1:{exporter_port}",
                                           "--refresh-interval", str(args.refresh_interval)]),
                              ("prometheus", ["--prometheus-url", prometheus.url,
                              "--max-age", str(3 * args.prometheus_scrape_interval)])):
            port = free_port()
            procs.append(subprocess.Popen([PYTHON, "-m", "adapter", "--insecure-http", "--bind-address", "127.0.0.1",
                                           "--secure-port", str(port), "--source", source, "--pods-file",
                                           str(tmp / "pods.json"), "--log-level", "error", *flags], cwd=REPO))
            adapters[source] = (f"http://127.0.0.1:{port}{CUSTOM}/namespaces/demo/pods/vllm-a/"
                                "kvscale_vllm_requests_waiting")
        for url in adapters.values():
            deadline = time.monotonic() + 60
            while asyncio.run(_probe(url)) is None:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{url} never answered")
                time.sleep(0.3)
        period = max(args.refresh_interval, args.prometheus_scrape_interval, args.exporter_interval)
        delays = asyncio.run(spike_rounds(f"http://127.0.0.1:{target_port}", adapters, args.rounds, period))
        print(f"queue spike -> visible through the adapter ({args.rounds} rounds; exporter interval "
              f"{args.exporter_interval:g} s, direct refresh {args.refresh_interval:g} s, "
              f"Prometheus scrape {args.prometheus_scrape_interval:g} s)")
        for name, values in delays.items():
            print(f"  {name:10s} p50 {statistics.median(values):5.2f} s   p95 {pct(values, 95):5.2f} s   "
                  f"max {max(values):5.2f} s")
        ratio = statistics.median(delays["prometheus"]) / statistics.median(delays["direct"])
        print(f"  prometheus/direct median ratio {ratio:.2f}")
    finally:
        if prometheus is not None:
            prometheus.close()
        for p in procs:
            p.terminate()
            p.wait(10)


async def _probe(url: str) -> float | None:
    async with ClientSession() as session:
        return await read_waiting(session, url)


def tls_load_run(args: argparse.Namespace) -> None:
    """The adapter's load check: ``--clients`` kept-alive TLS clients for ``--seconds`` (tests/adapter/load.py)."""
    from tests.adapter.helpers import FIXTURES, adapter_process
    from tests.adapter.load import MiB
    from tests.adapter.load import tls_load as drive
    from tests.conftest import Processes, start_static

    procs = Processes()
    tmp = Path(tempfile.mkdtemp(prefix="kvscale-tls-load-"))
    try:
        exporter = start_static(procs, "exporter", FIXTURES / "exporter.prom")
        with adapter_process(tmp, exporter_url=exporter) as served:
            result = asyncio.run(drive(served, clients=args.clients, seconds=args.seconds))
            print(result.summary())
            back = result.after_rss - result.baseline_rss <= 25 * MiB
            print(f"errors: {sum(result.errors.values())}; memory back to baseline (+25 MiB): {back}")
    finally:
        procs.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_exporters":
        serve_exporters(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_target":
        serve_target(int(sys.argv[2]))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--pods", type=int, default=500)
    t.add_argument("--selected", type=int, default=100)
    t.add_argument("--per-node", type=int, default=8)
    t.add_argument("--concurrency", type=int, default=16)
    t.add_argument("--seconds", type=float, default=5.0)
    t.add_argument("--runs", type=int, default=3)
    f = sub.add_parser("freshness")
    f.add_argument("--rounds", type=int, default=20)
    f.add_argument("--exporter-interval", type=float, default=1.0)
    f.add_argument("--refresh-interval", type=float, default=1.0)
    f.add_argument("--prometheus-scrape-interval", type=float, default=1.0)
    load = sub.add_parser("tls-load")
    load.add_argument("--clients", type=int, default=1000)
    load.add_argument("--seconds", type=float, default=60.0)
    args = p.parse_args()
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    {"throughput": throughput, "freshness": freshness, "tls-load": tls_load_run}[args.cmd](args)


if __name__ == "__main__":
    main()
