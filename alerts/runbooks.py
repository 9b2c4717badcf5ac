"""Runbook links: one function gives every alert its ``runbook_url``; none is written by hand.

Anchors are the alert name in lower case, which is what GitHub makes of a heading that is
exactly the alert name; ``heading_anchors`` lets tests hold docs/runbooks.md to that.
"""

from __future__ import annotations

import dataclasses
import re

from alerts.model import Alert, Group, Rule

_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")


def anchor(alert: str) -> str:
    return alert.lower()


def runbook_url(base: str, alert: str) -> str:
    return f"{base}#{anchor(alert)}"


def add_runbook_urls(groups: tuple[Group, ...], base: str) -> tuple[Group, ...]:
    """Every alert without a ``runbook_url`` annotation gets one pointing at its section."""

    def link(rule: Rule) -> Rule:
        if isinstance(rule, Alert) and rule.annotation("runbook_url") is None:
            return rule.with_annotation("runbook_url", runbook_url(base, rule.alert))
        return rule

    return tuple(dataclasses.replace(g, rules=tuple(link(r) for r in g.rules)) for g in groups)


def heading_anchors(markdown: str) -> set[str]:
    """GitHub-style anchors of the Markdown headings (lower case, punctuation dropped, spaces to -)."""
    found = set()
    in_fence = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        match = None if in_fence else _HEADING.match(line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            found.add(text.replace(" ", "-"))
    return found
