"""The chart's generated files: rules and dashboards as policy-following templates, the values
schema, and the policy block of values.yaml.

deploy/generate.py has one row per function here and writes or checks them (``--check`` fails CI
on drift), the way kube-prometheus-stack syncs its mixins into chart templates.
"""

from __future__ import annotations

import dataclasses
import functools
import json
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


def _policy_block(policy: Policy) -> str:
    """``policy:`` with every key and its value, each preceded by its documentation."""
    lines = [_BEGIN + " (deploy/generate.py; edit exporter/contract/policy.py, not this block)", "policy:"]
    defaults = policy
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


def values_yaml(current: str, policy: Policy) -> str:
    """values.yaml with its generated policy block replaced; the rest is hand-written."""
    start, end = current.find(_BEGIN), current.find(_END)
    if start < 0 or end < start:
        raise ValueError(f"values.yaml lacks the '{_BEGIN}' ... '{_END}' markers")
    return current[:start] + _policy_block(policy) + current[end + len(_END):]


@functools.cache
def _templates() -> dict[str, str]:
    """Chart-relative file name -> template text (policy-independent: the values fill them in)."""
    generators = _generators()
    optional = optional_strings(list(generators.values()))
    return {name: checked_template(generate, optional) for name, generate in generators.items()}


def dashboards() -> dict[str, str]:
    """files/dashboards/: one template per dashboard, by file name."""
    prefix = DASHBOARDS_DIR + "/"
    return {name.removeprefix(prefix): text for name, text in _templates().items() if name.startswith(prefix)}


def rules() -> str:
    """files/prometheusrule.json: the PrometheusRule's spec as a template."""
    return _templates()[RULES_FILE]


def schema() -> str:
    """values.schema.json; policy strings the rule generators cannot do without get minLength 1."""
    optional = optional_strings(list(_generators().values()))
    required = frozenset(f.name for f in dataclasses.fields(Policy)
                         if f.type in ("str", str) and f.name not in optional)
    return json.dumps(values_schema(required), indent=2) + "\n"


def values(policy: Policy | None = None, chart: Path = CHART) -> str:
    """values.yaml with the policy block regenerated (``policy``: the defaults, unless given)."""
    return values_yaml((chart / "values.yaml").read_text(encoding="utf-8"), policy or Policy())
