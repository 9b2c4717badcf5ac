"""The chart's generated files: rules and dashboards as policy-following templates, the values
schema, and the policy block of values.yaml.

``outputs()`` is the table deploy/generate.py writes and checks (``--check`` fails CI on drift),
the way kube-prometheus-stack syncs its mixins into chart templates. Run alone:
``python -m deploy.chart_sync [--check]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alerts.render import build_groups, prometheus_rule
from dashboards import build
from deploy.chart_schema import values_schema
from deploy.templating import Generator, checked_template, optional_strings
from exporter.contract.policy import Policy

CHART = Path(__file__).resolve().parent / "helm" / "kvscale"
RULES_FILE = "files/prometheusrule.json"
DASHBOARDS_DIR = "files/dashboards"
_BEGIN = "# BEGIN generated policy"
_END = "# END generated policy"


def rule_spec(policy: Policy) -> dict[str, Any]:
    """The PrometheusRule's spec the alerts package builds for ``policy``."""
    spec: dict[str, Any] = prometheus_rule(build_groups(policy))["spec"]
    return spec


def _dashboard(stem: str) -> Generator:
    def generate(policy: Policy) -> dict[str, Any]:
        return build.render(policy)[stem]
    return generate


def _generators() -> dict[str, Generator]:
    table: dict[str, Generator] = {RULES_FILE: rule_spec}
    for stem in build.DASHBOARDS:
        table[f"{DASHBOARDS_DIR}/{stem}.json"] = _dashboard(stem)
    return table


def _policy_block() -> str:
    """``policy:`` with every key at its default, each preceded by its documentation."""
    lines = [_BEGIN + " (deploy/chart_sync.py; edit exporter/contract/policy.py, not this block)", "policy:"]
    defaults = Policy()
    for f in dataclasses.fields(Policy):
        doc = f"{f.metadata['doc']} ({f.metadata['unit']})"
        lines.extend(_wrap(doc, "  # "))
        lines.append(f"  {f.name}: {json.dumps(getattr(defaults, f.name))}")
    lines.append(_END)
    return "\n".join(lines)


def _wrap(text: str, prefix: str, width: int = 100) -> list[str]:
    out, line = [], ""
    for word in text.split():
        if line and len(prefix) + len(line) + 1 + len(word) > width:
            out.append(prefix + line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*out, prefix + line]


def values_yaml(current: str) -> str:
    """values.yaml with its generated policy block replaced; the rest is hand-written."""
    start, end = current.find(_BEGIN), current.find(_END)
    if start < 0 or end < start:
        raise ValueError(f"values.yaml lacks the '{_BEGIN}' ... '{_END}' markers")
    return current[:start] + _policy_block() + current[end + len(_END):]


def outputs(chart: Path = CHART) -> dict[Path, str]:
    """Every generated file of the chart (absolute path -> content)."""
    generators = _generators()
    optional = optional_strings(list(generators.values()))
    required = frozenset(f.name for f in dataclasses.fields(Policy)
                         if f.type in ("str", str) and f.name not in optional)
    files = {chart / name: checked_template(generate, optional) for name, generate in generators.items()}
    files[chart / "values.schema.json"] = json.dumps(values_schema(required), indent=2) + "\n"
    values = chart / "values.yaml"
    files[values] = values_yaml(values.read_text(encoding="utf-8"))
    return files


def write(files: dict[Path, str]) -> list[Path]:
    """Write the files whose content differs; returns those written."""
    written = []
    for path, text in sorted(files.items()):
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def drift(files: dict[Path, str], chart: Path = CHART) -> list[Path]:
    """Generated files missing or stale, and stale dashboards nothing generates any more."""
    stale = [p for p, text in sorted(files.items()) if not p.exists() or p.read_text(encoding="utf-8") != text]
    extra = [p for p in sorted((chart / DASHBOARDS_DIR).glob("*.json")) if p not in files]
    return stale + extra


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.chart_sync", description=__doc__)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a file is stale")
    args = parser.parse_args(argv)
    files = outputs()
    if args.check:
        stale = drift(files)
        for path in stale:
            print(f"{path}: differs from a fresh build (run python -m deploy.chart_sync)", file=sys.stderr)
        return 1 if stale else 0
    for path in write(files):
        print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
