"""``kvscale-demo``: watch kvscale autoscale a simulated vLLM fleet through a traffic spike.

One command starts, on loopback: a fleet of simulated vLLM replicas (vLLM 0.33.0's /metrics,
an OpenAI-compatible router), one real kvscale-exporter per replica, the real kvscale-adapter
(direct source, TLS with a throwaway CA, front-proxy authentication), the HPA model reading the
adapter over HTTPS as kube-controller-manager does, and Debian's Prometheus with the alert rules
kvscale-alerts generates. Time is compressed by ``--speed`` on every clock at once. It ends with a
PNG plot and a summary: breach-to-serving time, TTFT against the SLO, GPU-hours, cost, alerts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from exporter.contract.policy import Policy
from simulator.demo_run import DemoConfig, run
from simulator.demo_summary import report

log = logging.getLogger("kvscale-demo")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kvscale-demo", description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=180.0,
                   help="wall-clock seconds to run (default 180); the scenario spans duration x speed")
    p.add_argument("--speed", type=float, default=10.0,
                   help="simulated seconds per wall second, on every clock (default 10)")
    p.add_argument("--profile", default="llama-3.1-8b-h100", help="model x GPU profile (default llama-3.1-8b-h100)")
    p.add_argument("--replicas", type=int, default=2, help="replicas at the start and HPA minReplicas (default 2)")
    p.add_argument("--max-replicas", type=int, default=8, help="HPA maxReplicas (default 8)")
    p.add_argument("--base-rate", type=float, default=8.0, help="requests per simulated second before and "
                                                                "after the spike (default 8)")
    p.add_argument("--spike-rate", type=float, default=28.0, help="requests per simulated second in the "
                                                                  "spike (default 28)")
    p.add_argument("--cold-start", type=float, default=None,
                   help="seconds a new replica takes to serve (default: the profile's pull + load + warm-up)")
    p.add_argument("--gpu-price-per-hour", type=float, default=2.5, help="dollars per GPU hour (default 2.5)")
    p.add_argument("--out", type=Path, default=Path("kvscale-demo-out"),
                   help="directory for demo.png, summary.txt, summary.json and logs (default ./kvscale-demo-out)")
    p.add_argument("--prometheus", default=None, help="prometheus binary (default: the one bash .ci/setup.sh "
                                                       "installs, else PATH)")
    p.add_argument("--seed", type=int, default=1, help="random seed of the arrivals (default 1)")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.duration <= 0 or args.speed <= 0 or args.replicas < 1 or args.max_replicas < args.replicas:
        parser().error("need --duration > 0, --speed > 0 and 1 <= --replicas <= --max-replicas")
    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    # The in-process exporters log every scrape of a cold-starting replica: keep the terminal for the view.
    logging.basicConfig(level=logging.WARNING, filename=args.out / "logs" / "demo.log",
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = DemoConfig(duration=args.duration, speed=args.speed, profile=args.profile, replicas=args.replicas,
                        max_replicas=args.max_replicas, base_rate=args.base_rate, spike_rate=args.spike_rate,
                        cold_start=args.cold_start, price=args.gpu_price_per_hour, out=args.out,
                        prometheus=args.prometheus, seed=args.seed, policy=Policy())
    console = Console(soft_wrap=True)
    try:
        result = asyncio.run(run(config, console))
    except (KeyboardInterrupt, asyncio.CancelledError):
        console.print("stopped: every process the demo started has been stopped")
        sys.exit(130)
    lines = report(result.summary, slo=config.policy.ttft_p95_slo_seconds)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (args.out / "summary.json").write_text(json.dumps(result.summary.as_dict(), indent=2) + "\n", encoding="utf-8")
    console.print()
    for line in lines:
        console.print(line)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(f"plot: {result.plot}   summary: {args.out / 'summary.txt'}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
