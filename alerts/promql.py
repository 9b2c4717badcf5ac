"""Small pure helpers that spell PromQL: selectors, durations, numbers, vLLM names.

Kept apart from the rule tables so each rule reads as the query it is, and these
helpers get table-driven tests of their own.
"""

from __future__ import annotations

import re

from exporter.contract.catalog import family

_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_VLLM_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def duration(seconds: int) -> str:
    """A Prometheus duration for a whole number of seconds, largest exact unit: 300 -> '5m'."""
    if seconds < 0 or seconds != int(seconds):
        raise ValueError(f"duration must be whole non-negative seconds, got {seconds!r}")
    if seconds == 0:
        return "0s"
    for suffix, size in _UNITS:
        if seconds % size == 0:
            return f"{seconds // size}{suffix}"
    raise AssertionError("unreachable: 1 s divides every whole number")


def number(value: float) -> str:
    """A threshold as PromQL reads it, without float noise: 5.0 -> '5', 0.85 -> '0.85'."""
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def matchers(*parts: str) -> str:
    """Join non-empty matcher lists with commas (an empty selector setting contributes nothing)."""
    return ", ".join(p.strip() for p in parts if p.strip())


def kvscale(name: str, *parts: str) -> str:
    """A kvscale_* series selector; the name is looked up in the catalog so a typo fails the build."""
    inner = matchers(*parts)
    return f"{family(name).name}{{{inner}}}" if inner else family(name).name


def vllm(name: str, *parts: str) -> str:
    """A selector for one of vLLM's own series, accepting both spellings of its prefix.

    Prometheus negotiating OpenMetrics with prometheus_client >= 0.23 stores ``vllm_x``
    instead of ``vllm:x`` (reference/tooling.md section 8); matching ``vllm[:_]`` keeps
    the rules working either way.
    """
    if not _VLLM_NAME.match(name):
        raise ValueError(f"not a bare vLLM metric name (no prefix): {name!r}")
    return "{" + matchers(f'__name__=~"vllm[:_]{name}"', *parts) + "}"
