"""``kvscale-demo``: simulated vLLM engines, the real exporter over them, its signals live.

Everything runs in this process on loopback: two simulated pods serving real vLLM
0.33.0 expositions (one with two data-parallel engines), the exporter scraping them,
and a table of what the exporter serves, refreshed every few seconds. Halfway
through, a queue spike hits one pod and the other goes down, to show saturation
climbing and ``kvscale_vllm_up 0`` with no stale series.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp
from aiohttp import web

from exporter.app import serve
from exporter.contract.exposition import parse
from exporter.settings import build
from simulator.target import TargetState, load_template, make_app

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "vllm"
PODS = {"vllm-a": "v0.33.0-dp2-optional-features.prom", "vllm-b": "v0.33.0-single-engine.prom"}
COLUMNS = (
    ("up", "kvscale_vllm_up", None), ("running", "kvscale_vllm_requests_running", None),
    ("waiting", "kvscale_vllm_requests_waiting", None), ("kv", "kvscale_vllm_kv_cache_usage_ratio", None),
    ("frag", "kvscale_vllm_kv_cache_fragmentation_ratio", None), ("ttft p95", "kvscale_vllm_ttft_seconds", "0.95"),
    ("gen tok/s", "kvscale_vllm_generation_tokens_per_second", None),
    ("$/1M tok", "kvscale_vllm_cost_per_million_tokens_dollars", None),
    ("saturation", "kvscale_vllm_saturation_ratio", None),
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def table(body: str) -> str:
    """The demo's table of per-pod signals from an exporter /metrics body."""
    exposition = parse(body)
    rows: dict[str, dict[str, float]] = {}
    for header, name, quantile in COLUMNS:
        for labels, value in exposition.samples.get(name, []):
            if quantile is None or labels.get("quantile") == quantile:
                rows.setdefault(labels.get("pod", "?"), {})[header] = value
    lines = ["pod      " + "".join(f"{h:>11}" for h, _, _ in COLUMNS)]
    for pod in sorted(rows):
        cells = "".join(f"{rows[pod][h]:>11.4g}" if h in rows[pod] else f"{'-':>11}" for h, _, _ in COLUMNS)
        lines.append(f"{pod:<9}{cells}")
    return "\n".join(lines)


async def run(duration: float, price: float) -> None:
    states: dict[str, TargetState] = {}
    runners: list[web.AppRunner] = []
    targets: list[str] = []
    for pod, fixture in PODS.items():
        states[pod] = TargetState(load_template((FIXTURES / fixture).read_text(encoding="utf-8")), growth=0.5)
        runner = web.AppRunner(make_app(states[pod]), access_log=None)
        await runner.setup()
        port = _free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        targets.append(f"demo/{pod}=http://127.0.0.1:{port}/metrics")
    listen = f"127.0.0.1:{_free_port()}"
    settings = build([("demo", {"listen": listen, "vllm_target": targets, "interval": 1.0, "window": 20.0,
                                 "scrape_timeout": 0.5, "gpu_price_per_hour": price, "nvml": "off",
                                 "kubernetes": "off"})])
    started = asyncio.Event()
    exporter = asyncio.create_task(serve(settings, started=started))
    await started.wait()
    print(f"kvscale-exporter on http://{listen}/metrics scraping {len(targets)} simulated vLLM pods "
          f"(curl it while this runs)\n")
    begin = time.monotonic()
    spiked = False
    try:
        async with aiohttp.ClientSession() as session:
            while (elapsed := time.monotonic() - begin) < duration:
                await asyncio.sleep(3)
                async with session.get(f"http://{listen}/metrics") as resp:
                    body = await resp.text()
                print(f"t={time.monotonic() - begin:5.1f}s\n{table(body)}\n")
                if not spiked and elapsed > duration / 2:
                    spiked = True
                    states["vllm-a"].overrides["vllm:num_requests_waiting"] = 12.0
                    states["vllm-a"].changed()
                    states["vllm-b"].fault = "http_500"
                    print(">>> queue spike on vllm-a (12 waiting per engine); vllm-b starts answering HTTP 500\n")
    finally:
        exporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await exporter
        for runner in runners:
            await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="kvscale-demo", description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=30.0, help="seconds to run (default 30)")
    p.add_argument("--gpu-price-per-hour", type=float, default=2.5, help="dollars per GPU hour (default 2.5)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="  log: %(levelname)s %(message)s")
    asyncio.run(run(args.duration, args.gpu_price_per_hour))


if __name__ == "__main__":
    main()
