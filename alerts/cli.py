"""``kvscale-alerts``: build the Prometheus rule files and PrometheusRule object.

Exit codes: 0 built, 2 bad settings or arguments, 1 the files could not be written.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from alerts.config import AlertSettings, load_config
from alerts.render import RenderError, build_groups, render_files, write_files
from exporter.contract.policy import ThresholdsError, describe

log = logging.getLogger("kvscale.alerts")

ENV_THRESHOLDS = "KVSCALE_ALERTS_THRESHOLDS"


def _settings_help() -> str:
    lines = ["thresholds and settings (--set name=value, or keys of the --thresholds file):"]
    for name, unit, default, _doc in describe():
        lines.append(f"  {name} = {default} ({unit})")
    for field_name, field in AlertSettings.__dataclass_fields__.items():
        lines.append(f"  {field_name} = {field.default!r} ({field.metadata['unit']})")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="kvscale-alerts", description="Prometheus rules for kvscale, as code.")
    commands = top.add_subparsers(dest="command", required=True)
    build = commands.add_parser(
        "build", help="write <group>.rules.yml files and prometheusrule.yaml into DIR",
        epilog=_settings_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    build.add_argument("directory", type=Path, metavar="DIR", help="output directory (created if missing)")
    build.add_argument("--thresholds", type=Path, default=os.environ.get(ENV_THRESHOLDS) or None,
                       metavar="FILE.yaml",
                       help=f"YAML mapping of threshold/setting names to values (env {ENV_THRESHOLDS})")
    build.add_argument("--set", dest="assignments", action="append", default=[], metavar="NAME=VALUE",
                       help="override one threshold or setting; repeatable; applied after --thresholds")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    try:
        config = load_config(args.thresholds, args.assignments)
        groups = build_groups(config)
    except (ThresholdsError, ValueError) as exc:
        log.error("invalid settings: %s", exc)
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
