"""``kvscale-sim``: compare scaling policies side by side on the same trace, in virtual time.

The engine model and the HPA/KEDA models run in process on a virtual clock; the signals
are computed as kvscale's exporter computes them and thresholds come from the policy
file. Prints a Markdown table (SLO-violation minutes, p95 TTFT, GPU-hours, cost per 1M
tokens, scaling events) and, with --plot, writes a PNG.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from exporter.contract.policy import Policy, PolicyError
from exporter.contract.policy import load as load_policy
from simulator.engine.profile import ProfileError, available
from simulator.engine.profile import load as load_profile
from simulator.whatif.policies import Candidate, candidates, parse_sweep
from simulator.whatif.report import plot, table
from simulator.whatif.run import Result, Settings, simulate
from simulator.workload.scenarios import by_name, scenarios
from simulator.workload.trace import TraceError, Workload, load_csv


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kvscale-sim", description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--scenario", default="spike", choices=[*scenarios(), "azure"],
                     help="built-in scenario, or azure for the shipped Azure conversation trace (default spike)")
    src.add_argument("--trace", type=Path, help="CSV trace: arrival_time, prompt_tokens, output_tokens")
    p.add_argument("--time-scale", type=float, default=1.0,
                   help="multiply arrival times (0.25 replays four times faster; default 1)")
    p.add_argument("--duration", type=float, help="only the first N simulated seconds of the workload")
    p.add_argument("--seed", type=int, default=0, help="seed of the built-in scenarios (default 0)")
    p.add_argument("--profile", default="llama-3.1-8b-h100",
                   help=f"model x GPU profile: {', '.join(available())}, or a YAML path")
    p.add_argument("--policy-file", type=Path, help="kvscale policy YAML (targets, SLO, stabilization)")
    p.add_argument("--policies", default="all", help="comma-separated built-in policies (default all)")
    p.add_argument("--sweep", action="append", default=[], metavar="POLICY=V1,V2",
                   help="also run POLICY with each target value (repeatable)")
    p.add_argument("--stabilization", default="", metavar="S1,S2",
                   help="also run each chosen policy with these scale-down stabilization windows (s)")
    p.add_argument("--min-replicas", type=int, default=1)
    p.add_argument("--max-replicas", type=int, default=16)
    p.add_argument("--initial-replicas", type=int, default=2)
    p.add_argument("--gpu-price-per-hour", type=float, default=2.5, help="dollars per GPU hour (default 2.5)")
    p.add_argument("--plot", type=Path, help="write a PNG of replicas, queue, TTFT p95 and KV usage")
    return p


def workload(args: argparse.Namespace) -> Workload:
    w = load_csv(args.trace) if args.trace else by_name(args.scenario, seed=args.seed)
    if args.time_scale != 1.0:
        w = w.scaled(args.time_scale)
    return w.head(args.duration) if args.duration else w


def chosen(args: argparse.Namespace, policy: Policy) -> list[Candidate]:
    known = candidates(policy)
    names = list(known) if args.policies == "all" else [n for n in args.policies.split(",") if n]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown policies {', '.join(unknown)}; known: {', '.join(known)}")
    out = [known[n] for n in names]
    for text in args.sweep:
        out.extend(parse_sweep(text, known))
    windows = [float(v) for v in args.stabilization.split(",") if v]
    out.extend(c.with_stabilization(w) for c in list(out) for w in windows)
    return out


def run(args: argparse.Namespace) -> tuple[Workload, list[Result]]:
    policy = load_policy(args.policy_file) if args.policy_file else Policy()
    settings = Settings(load_profile(args.profile), policy, min_replicas=args.min_replicas,
                        max_replicas=args.max_replicas, initial_replicas=args.initial_replicas,
                        gpu_price_per_hour=args.gpu_price_per_hour)
    w = workload(args)
    return w, [simulate(w, c, settings) for c in chosen(args, policy)]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        w, results = run(args)
    except (ValueError, TraceError, ProfileError, PolicyError, KeyError) as exc:
        print(f"kvscale-sim: {exc}", file=sys.stderr)
        return 2
    print(f"{w.name}: {len(w.arrivals)} requests over {w.duration / 60:.1f} min on {args.profile}, "
          f"replicas {args.min_replicas}-{args.max_replicas} (start {args.initial_replicas})\n")
    print(table(results))
    if args.plot:
        slo = results[0].slo if results else 0.8
        print(f"\nplot: {plot(results, args.plot, slo=slo, title=f'kvscale-sim: {w.name}')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
