"""``kvscale-dashboards``: build the Grafana JSON, check it for drift, or preview it as PNGs."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from dashboards import build
from exporter.contract.policy import ENV_NAME, FLAG_HELP, Policy, PolicyError, from_flag_or_env

DEPRECATED_FLAG, DEPRECATED_ENV = "--thresholds", "KVSCALE_THRESHOLDS_FILE"
VARIABLES = ("cluster", "namespace", "model", "pod", "node")  # the dashboards' query variables


def _policy(args: argparse.Namespace) -> Policy:
    return from_flag_or_env(args.policy, prog="kvscale-dashboards", old_flag=(DEPRECATED_FLAG, args.deprecated_policy),
                            old_env=DEPRECATED_ENV)


def _policy_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", metavar="FILE", help=FLAG_HELP)
    p.add_argument(DEPRECATED_FLAG, dest="deprecated_policy", metavar="FILE",
                   help=f"deprecated spelling of --policy (env {DEPRECATED_ENV}: of {ENV_NAME})")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kvscale-dashboards", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write one JSON file per dashboard into DIR")
    b.add_argument("dir", type=Path, help="output directory (created if missing)")
    _policy_flags(b)
    b.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if DIR differs from a fresh build (for CI)")
    p = sub.add_parser("preview", help="draw each dashboard's panels to DIR/<name>.png from a Prometheus")
    p.add_argument("--prometheus-url", default=os.environ.get("KVSCALE_PROMETHEUS_URL", "http://127.0.0.1:9090"),
                   help="Prometheus to query [env KVSCALE_PROMETHEUS_URL] (default %(default)s)")
    p.add_argument("--out", type=Path, required=True, help="directory for the PNG files")
    p.add_argument("--minutes", type=float, default=15.0, help="time window to draw (default %(default)s)")
    p.add_argument("--rate-interval", default="1m", help="value of $__rate_interval (default %(default)s)")
    for name in VARIABLES:
        p.add_argument(f"--{name}", default=".*", help=f"value of ${name}, a regex (default: all)")
    _policy_flags(p)
    return parser


def _build(args: argparse.Namespace, policy: Policy) -> int:
    if args.check:
        stale = build.drift(args.dir, policy)
        for name in stale:
            print(f"{args.dir / name}: differs from a fresh build", file=sys.stderr)
        return 1 if stale else 0
    for path in build.write(args.dir, policy):
        print(path)
    return 0


def _preview(args: argparse.Namespace, policy: Policy) -> int:
    # Imported here so `build` works without the optional matplotlib.
    from dashboards.preview import PreviewSettings, render_all
    from dashboards.prom_client import PrometheusClient, PrometheusError

    client = PrometheusClient(args.prometheus_url)
    try:
        client.query("1", at=0)
    except PrometheusError as exc:
        print(f"kvscale-dashboards: {exc}", file=sys.stderr)
        return 2
    settings = PreviewSettings(minutes=args.minutes, rate_interval=args.rate_interval,
                               variables={n: getattr(args, n) for n in VARIABLES})
    results = render_all(build.render(policy), client, settings, args.out)
    for stem, panels in results.items():
        failed = sum(1 for p in panels if p.error)
        print(f"{args.out / (stem + '.png')}: {len(panels)} panels, {failed} failed queries")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    try:
        policy = _policy(args)
    except PolicyError as exc:
        print(f"kvscale-dashboards: error: {exc}", file=sys.stderr)
        return 2
    try:
        return _build(args, policy) if args.command == "build" else _preview(args, policy)
    except build.BuildError as exc:
        print(f"kvscale-dashboards: {exc}", file=sys.stderr)
        return 2
