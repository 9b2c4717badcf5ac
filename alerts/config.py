"""What the rule generators read: the one policy, plus ``--set name=value`` overrides.

Like kubernetes-mixin's ``_config``: every threshold, selector, window and duration is
named once, in ``exporter.contract.policy``, and interpolated into the rules. This module
only reads it the way ``kvscale-alerts`` is told to: ``--policy FILE`` (or KVSCALE_POLICY;
``--thresholds`` / KVSCALE_ALERTS_THRESHOLDS are the older spellings), then ``--set``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from exporter.contract.policy import Policy, PolicyError, from_flag_or_env

DEPRECATED_FLAG = "--thresholds"
DEPRECATED_ENV = "KVSCALE_ALERTS_THRESHOLDS"


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """``name=value`` pairs (``--set``) to a mapping; values are YAML scalars (0.9, 300, job="x")."""
    data: dict[str, Any] = {}
    for item in assignments:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise PolicyError(f"--set: expected name=value, got {item!r}")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw  # selectors such as job="x" are not valid YAML scalars: keep the text
        data[name.strip()] = raw if value is None or isinstance(value, (dict, list)) else value
    return data


def load_config(policy: str | Path | None, assignments: list[str], *, deprecated: str | Path | None = None,
                environ: Mapping[str, str] | None = None) -> Policy:
    """The policy file (``--policy``, else the deprecated ``--thresholds``, else the environment) with
    ``--set`` values on top. Unknown keys and bad values are PolicyErrors with the policy's message."""
    base = from_flag_or_env(policy, environ, prog="kvscale-alerts", old_flag=(DEPRECATED_FLAG, deprecated),
                            old_env=DEPRECATED_ENV)
    return base.replace(parse_assignments(assignments), "--set") if assignments else base
