"""The rule model: typed recording rules, alerts and groups, rendered to Prometheus' shape.

Generators build these; ``render`` turns them into YAML. Keeping the shape typed lets the
runbook function and the tests walk every alert without parsing YAML back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from alerts.promql import duration

Severity = Literal["critical", "warning", "info"]
"""The levels an alert may carry; severities come from the policy, whose schema holds them to these."""


@dataclass(frozen=True)
class Recording:
    """A recording rule named ``level:metric:operations``."""

    record: str
    expr: str
    labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.record.count(":") != 2:
            raise ValueError(f"recording rule {self.record!r} is not named level:metric:operations")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"record": self.record, "expr": self.expr}
        if self.labels:
            out["labels"] = dict(self.labels)
        return out


@dataclass(frozen=True)
class Alert:
    """An alerting rule plus ``probe``: its input without the threshold, for data checks.

    For an ``absent()`` alert the probe is the series whose absence fires it.
    """

    alert: str
    expr: str
    for_seconds: int
    severity: str
    summary: str
    description: str
    probe: str
    annotations: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if "{{" in self.summary:
            raise ValueError(f"{self.alert}: the summary is static; put templates in the description")

    def with_annotation(self, key: str, value: str) -> Alert:
        kept = tuple((k, v) for k, v in self.annotations if k != key)
        return dataclasses.replace(self, annotations=(*kept, (key, value)))

    def annotation(self, key: str) -> str | None:
        return dict(self.annotations).get(key)

    def to_dict(self) -> dict[str, Any]:
        annotations = {"summary": self.summary, "description": self.description, **dict(self.annotations)}
        return {
            "alert": self.alert,
            "expr": self.expr,
            "for": duration(self.for_seconds),
            "labels": {"severity": self.severity},
            "annotations": annotations,
        }


Rule = Recording | Alert


@dataclass(frozen=True)
class Group:
    """A rule group; written to ``<name>.rules.yml``."""

    name: str
    rules: tuple[Rule, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rules": [rule.to_dict() for rule in self.rules]}

    def alerts(self) -> tuple[Alert, ...]:
        return tuple(r for r in self.rules if isinstance(r, Alert))

    def recordings(self) -> tuple[Recording, ...]:
        return tuple(r for r in self.rules if isinstance(r, Recording))
