"""Simulator benchmark: simulated seconds per wall second, the hour of real Azure traffic on 8 replicas.

``.venv/bin/python bench/bench_sim.py [--runs 5] [--profile llama-3.1-8b-h100]`` pins
itself to one CPU core, replays the shipped Azure conversation trace (19,366 requests,
58 min) through 8 simulated vLLM replicas behind the least-outstanding router on a
virtual clock, until every request is done, and prints the median over runs. The
target is >= 500x real time. A second line times one kvscale-sim policy run (signals,
HPA syncs every 15 s) on the same trace.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from exporter.contract.policy import Policy
from simulator.engine import Fleet, Request, VirtualClock
from simulator.engine.profile import load
from simulator.whatif.policies import candidates
from simulator.whatif.run import Settings, simulate
from simulator.workload import azure_conversation


def replay(profile: str, replicas: int) -> tuple[float, float, int]:
    """(simulated seconds, wall seconds, finished requests) for one replay of the Azure hour."""
    w = azure_conversation()
    clock = VirtualClock()
    fleet = Fleet(profile, replicas=replicas, clock=clock)
    done: list[Request] = []
    fleet.finish_hooks.append(done.append)
    start = time.perf_counter()
    for a in w.arrivals:
        clock.advance_to(a.at)
        fleet.submit(Request(a.prompt_tokens, a.output_tokens))
    end = w.duration
    while any(r.outstanding for r in fleet.replicas):
        end += 10.0
        clock.advance_to(end)
        fleet.advance(end)
    wall = time.perf_counter() - start
    if not all(e.conserved() for r in fleet.replicas for e in r.engines):
        raise SystemExit("conservation broken")
    return end, wall, len(done)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--replicas", type=int, default=8)
    p.add_argument("--profile", default="llama-3.1-8b-h100")
    args = p.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    speeds, walls = [], []
    for _ in range(args.runs):
        simulated, wall, done = replay(args.profile, args.replicas)
        speeds.append(simulated / wall)
        walls.append(wall)
    print(f"azure hour, {args.replicas} replicas, {args.profile}: {done} requests, "
          f"{simulated:.0f} simulated s in {statistics.median(walls):.2f} s wall (median of {args.runs}) = "
          f"{statistics.median(speeds):.0f}x real time (min {min(speeds):.0f}x, max {max(speeds):.0f}x)")
    policy = Policy()
    settings = Settings(load(args.profile), policy, initial_replicas=args.replicas)
    start = time.perf_counter()
    result = simulate(azure_conversation(), candidates(policy)["saturation"], settings)
    wall = time.perf_counter() - start
    span = result.samples[-1].at if result.samples else 0.0
    print(f"kvscale-sim, saturation policy on the same trace: {span:.0f} simulated s in {wall:.2f} s wall = "
          f"{span / wall:.0f}x real time")


if __name__ == "__main__":
    main()
