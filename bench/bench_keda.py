"""KEDA freshness: a queue spike -> seen by KEDA through kvscale's scaler, beside a Prometheus trigger.

    .venv/bin/python bench/bench_keda.py --rounds 12

Measured the way bench_adapter.py measures the adapter: a vLLM-format target whose
``vllm:num_requests_waiting`` the bench sets, a real exporter process over it, and:

- kvscale's scaler (the adapter process with ``--keda-port``, direct source, TLS with a client
  certificate), called as KEDA calls it: a held-open ``StreamIsActive`` (``external-push``; the delay
  is until the stream pushes the new activity) and ``GetMetrics`` (polled every 20 ms: the delay is
  until an answer shows the new value, i.e. how stale a KEDA read could be);
- the baseline, a ``prometheus`` trigger: a real Prometheus scraping the exporter every 15 s and KEDA
  polling it every 30 s. The scrape is real (the bench polls Prometheus every 50 ms until the query
  shows the value); the polling is modelled: each round draws the poll schedule's phase uniformly, and
  KEDA sees the value at its first poll after Prometheus has it.

Rounds alternate a spike (queue 100+r, above the activation target 50) and a drain (0), so each round
changes both the value and the activity. Between rounds the bench waits a random part of the scrape
interval, so changes land at random phases of every loop. Prints p50/p95/max of each delay.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import grpc  # noqa: E402
from aiohttp import ClientSession, ClientTimeout  # noqa: E402

from bench.bench_adapter import pct, wait_http  # noqa: E402
from tests.adapter.keda_client import PKI, KedaClient  # noqa: E402
from tests.conftest import PrometheusServer, free_port  # noqa: E402

PYTHON = sys.executable
ACTIVATION = 50.0
QUERY = 'sum(kvscale_vllm_requests_waiting{namespace="demo"})'
METADATA = {"family": "kvscale_vllm_requests_waiting", "podSelector": "app=vllm", "target": "5",
            "activationTarget": f"{ACTIVATION:g}"}


async def prometheus_value(session: ClientSession, url: str) -> float | None:
    try:
        async with session.get(f"{url}/api/v1/query", params={"query": QUERY}, timeout=ClientTimeout(total=2)) as r:
            result = (await r.json())["data"]["result"]
    except (TimeoutError, OSError, ValueError, KeyError):
        return None
    return float(result[0]["value"][1]) if result else None


async def scaler_value(client: KedaClient) -> float | None:
    try:
        return await client.value()
    except grpc.aio.AioRpcError:  # an error answer is "not yet": the bench keeps polling
        return None


async def rounds(args: argparse.Namespace, target: str, client: KedaClient, prom_url: str) -> dict[str, list[float]]:
    rng = random.Random(7)
    delays: dict[str, list[float]] = {"stream": [], "getmetrics": [], "prometheus": [], "baseline": []}
    pushes: asyncio.Queue[tuple[float, bool]] = asyncio.Queue()

    async def hold_stream() -> None:
        async for active in client.stream():
            await pushes.put((time.perf_counter(), active))

    streamer = asyncio.create_task(hold_stream())
    await pushes.get()  # the state at open
    async with ClientSession() as session:
        for r in range(args.rounds):
            value = float(100 + r) if r % 2 == 0 else 0.0
            async with session.post(f"{target}/set?waiting={value:g}"):
                t0 = time.perf_counter()
            pending = {"stream", "getmetrics", "prometheus"}
            while pending:
                now = time.perf_counter()
                if "stream" in pending and not pushes.empty():
                    at, active = pushes.get_nowait()
                    assert active == (value > ACTIVATION), f"round {r}: pushed {active} for queue {value}"
                    delays["stream"].append(at - t0)
                    pending.discard("stream")
                if "getmetrics" in pending and await scaler_value(client) == value:
                    delays["getmetrics"].append(time.perf_counter() - t0)
                    pending.discard("getmetrics")
                if "prometheus" in pending and await prometheus_value(session, prom_url) == value:
                    seen = time.perf_counter() - t0
                    delays["prometheus"].append(seen)
                    phase = rng.uniform(0, args.keda_polling_interval)  # KEDA's polls: phase + k * interval
                    delays["baseline"].append(seen + (phase - seen) % args.keda_polling_interval)
                    pending.discard("prometheus")
                if now - t0 > 120:
                    raise SystemExit(f"round {r}: {sorted(pending)} never showed {value}")
                await asyncio.sleep(0.02)
            await asyncio.sleep(rng.uniform(0, args.prometheus_scrape_interval))
    streamer.cancel()
    return delays


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--exporter-interval", type=float, default=1.0)
    p.add_argument("--refresh-interval", type=float, default=0.5)
    p.add_argument("--prometheus-scrape-interval", type=float, default=15.0)
    p.add_argument("--keda-polling-interval", type=float, default=30.0)
    args = p.parse_args()
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    tmp = Path(tempfile.mkdtemp(prefix="kvscale-bench-keda-"))
    (tmp / "pods.yaml").write_text('{"kind": "PodList", "items": [{"metadata": {"name": "vllm-a", "namespace": '
                                   '"demo", "labels": {"app": "vllm"}}, "status": {"phase": "Running"}}]}')
    pki = PKI(tmp)
    target_port, exporter_port, keda_port = free_port(), free_port(), free_port()
    procs = [subprocess.Popen([PYTHON, str(REPO / "bench" / "bench_adapter.py"), "_target", str(target_port)])]
    prometheus = None
    try:
        wait_http(f"http://127.0.0.1:{target_port}/metrics")
        procs.append(subprocess.Popen(
            [PYTHON, "-m", "exporter", "--listen", f"127.0.0.1:{exporter_port}", "--nvml", "off", "--interval",
             str(args.exporter_interval), "--scrape-timeout", str(args.exporter_interval / 2), "--vllm-target",
             f"demo/vllm-a=http://127.0.0.1:{target_port}/metrics", "--log-level", "warning"], cwd=REPO))
        wait_http(f"http://127.0.0.1:{exporter_port}/readyz")
        scrape = f"{args.prometheus_scrape_interval:g}s"
        prometheus = PrometheusServer({
            "global": {"scrape_interval": scrape, "evaluation_interval": scrape},
            "scrape_configs": [{"job_name": "kvscale-exporter", "honor_labels": True,
                                "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}]})
        procs.append(subprocess.Popen(
            [PYTHON, "-m", "adapter", "--bind-address", "127.0.0.1", "--secure-port", str(free_port()),
             "--tls-cert-file", str(pki.cert_file), "--tls-private-key-file", str(pki.key_file),
             "--client-ca-file", str(pki.client_ca_file), "--authorization-mode", "none", "--source", "direct",
             "--exporter-url", f"http://127.0.0.1:{exporter_port}", "--refresh-interval", str(args.refresh_interval),
             "--pods-file", str(tmp / "pods.yaml"), "--keda-port", str(keda_port), "--keda-client-ca-file",
             str(pki.client_ca_file), "--keda-allowed-names", "keda-operator", "--log-level", "error"], cwd=REPO))
        delays = asyncio.run(_run(args, f"http://127.0.0.1:{target_port}", f"127.0.0.1:{keda_port}", pki,
                                  prometheus.url))
    finally:
        if prometheus is not None:
            prometheus.close()
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    print(f"queue change -> seen by KEDA ({args.rounds} rounds; exporter interval {args.exporter_interval:g} s, "
          f"adapter refresh {args.refresh_interval:g} s; baseline: Prometheus scrape "
          f"{args.prometheus_scrape_interval:g} s + KEDA polling {args.keda_polling_interval:g} s)")
    labels = {"stream": "kvscale StreamIsActive (activation)", "getmetrics": "kvscale GetMetrics (value)",
              "prometheus": "Prometheus has it (scrape only)", "baseline": "prometheus trigger (scrape+poll)"}
    for name, values in delays.items():
        print(f"  {labels[name]:38s} p50 {statistics.median(values):6.2f} s   p95 {pct(values, 95):6.2f} s   "
              f"max {max(values):6.2f} s")
    for name in ("stream", "getmetrics"):
        ratio = pct(delays["baseline"], 95) / pct(delays[name], 95)
        print(f"  baseline p95 / {name} p95: {ratio:.1f}x")


async def _run(args: argparse.Namespace, target: str, address: str, pki: PKI, prom_url: str) -> dict[str, list[float]]:
    client = KedaClient(address, pki.credentials(), metadata=METADATA, namespace="demo")
    try:
        deadline = time.monotonic() + 60
        while await scaler_value(client) is None:
            if time.monotonic() > deadline:
                raise SystemExit("the scaler never answered")
            await asyncio.sleep(0.3)
        async with ClientSession() as session:
            while await prometheus_value(session, prom_url) is None:
                if time.monotonic() > deadline + 60:
                    raise SystemExit("Prometheus never had the series")
                await asyncio.sleep(0.5)
        return await rounds(args, target, client, prom_url)
    finally:
        await client.close()


if __name__ == "__main__":
    main()
