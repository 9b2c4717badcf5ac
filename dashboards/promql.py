"""The PromQL inside built dashboards, and Grafana's variables substituted for evaluation.

Pure: tests use it to parse every panel's query and run it against a real Prometheus,
the preview uses it to fetch what each panel would show.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dashboards.build import all_panels


@dataclass(frozen=True)
class PanelQuery:
    """One target of one panel: where it is and what it asks."""

    dashboard: str
    panel_id: int
    panel: str
    ref_id: str
    expr: str
    legend: str
    instant: bool


def panel_queries(dash: dict[str, Any]) -> list[PanelQuery]:
    """Every Prometheus target of every panel of a dashboard, in document order."""
    found = []
    for panel in all_panels(dash):
        for target in panel.get("targets") or []:
            found.append(PanelQuery(
                dashboard=dash.get("uid", ""), panel_id=int(panel.get("id", 0)), panel=panel.get("title", ""),
                ref_id=target.get("refId", ""), expr=target["expr"], legend=target.get("legendFormat", ""),
                instant=bool(target.get("instant", False))))
    return found


# Grafana's built-in interval variables, which Prometheus must see as durations.
BUILTIN_DEFAULTS: Mapping[str, str] = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


class UnknownVariableError(KeyError):
    """An expression uses a variable no value was given for."""


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """``expr`` with ``$var``, ``${var}``, ``${var:fmt}`` and ``[[var]]`` replaced from ``values``.

    Built-in interval variables default to ``BUILTIN_DEFAULTS``; any other unknown
    variable raises rather than leaving a ``$`` for Prometheus to choke on.
    """
    merged = {**BUILTIN_DEFAULTS, **values}

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group is not None)
        if name not in merged:
            raise UnknownVariableError(f"no value for Grafana variable ${name} in {expr!r}")
        return merged[name]

    return _VARIABLE.sub(replace, expr)


def legend(fmt: str, labels: Mapping[str, str], fallback: str) -> str:
    """Grafana's ``{{label}}`` legend format applied to a series' labels."""
    if not fmt:
        return fallback
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt).strip() or fallback
