"""``kvscale-alerts``: build the Prometheus rule files and PrometheusRule object.

Exit codes: 0 built, 2 bad settings or arguments, 1 the files could not be written.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from alerts.config import DEPRECATED_ENV, DEPRECATED_FLAG, load_config
from alerts.render import RenderError, build_groups, render_files, write_files
from exporter.contract.policy import FLAG_HELP, PolicyError, describe

log = logging.getLogger("kvscale.alerts")


def _policy_help() -> str:
    lines = ["policy keys (--set name=value, or keys of the --policy file; see docs/metrics.md#policy):"]
    lines += [f"  {name} = {default} ({unit})" for name, unit, default, _doc in describe()]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="kvscale-alerts", description="Prometheus rules for kvscale, as code.")
    commands = top.add_subparsers(dest="command", required=True)
    build = commands.add_parser(
        "build", help="write <group>.rules.yml files and prometheusrule.yaml into DIR",
        epilog=_policy_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    build.add_argument("directory", type=Path, metavar="DIR", help="output directory (created if missing)")
    build.add_argument("--policy", type=Path, metavar="FILE", help=FLAG_HELP)
    build.add_argument(DEPRECATED_FLAG, dest="deprecated_policy", type=Path, metavar="FILE",
                       help=f"deprecated spelling of --policy (env {DEPRECATED_ENV}: of KVSCALE_POLICY)")
    build.add_argument("--set", dest="assignments", action="append", default=[], metavar="NAME=VALUE",
                       help="override one policy key; repeatable; applied after the --policy file")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    try:
        policy = load_config(args.policy, args.assignments, deprecated=args.deprecated_policy)
    except PolicyError as exc:
        print(f"kvscale-alerts: error: {exc}", file=sys.stderr)
        return 2
    try:
        groups = build_groups(policy)
    except ValueError as exc:
        log.error("invalid rules: %s", exc)
        return 2
    try:
        written = write_files(render_files(groups), args.directory)
    except RenderError as exc:
        log.error("%s", exc)
        return 1
    alerts = sum(len(g.alerts()) for g in groups)
    records = sum(len(g.recordings()) for g in groups)
    log.info("wrote %d files (%d alerts, %d recording rules) to %s", len(written), alerts, records, args.directory)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
