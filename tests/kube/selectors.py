"""Label and field selectors as the Kubernetes API server applies them (pure; for the fake server).

Label selectors: ``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``, ``k in (a,b)``, ``k notin (a,b)``,
comma-separated. Field selectors: ``=``, ``==``, ``!=`` on the fields the real server supports for the
resource (metadata.name and metadata.namespace for every kind, more for pods and
ResourceSlices); any other field is rejected, as the real server rejects it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Obj = Mapping[str, Any]


class SelectorError(ValueError):
    """The selector is malformed or names an unsupported field (the server answers 400)."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        return not present or value not in self.values  # "!=" and "notin" match absent keys


_SET_RE = re.compile(r"\s*([A-Za-z0-9_./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*")
_EQ_RE = re.compile(r"\s*([A-Za-z0-9_./-]+)\s*(==|!=|=)\s*([A-Za-z0-9_.-]*)\s*")
_KEY_RE = re.compile(r"\s*(!?)\s*([A-Za-z0-9_./-]+)\s*")


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def parse_label_selector(text: str) -> list[Requirement]:
    if not text.strip():
        return []
    requirements = []
    for part in _split_top(text):
        if m := _SET_RE.fullmatch(part):
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            requirements.append(Requirement(m.group(1), m.group(2), values))
        elif m := _EQ_RE.fullmatch(part):
            op = "!=" if m.group(2) == "!=" else "="
            requirements.append(Requirement(m.group(1), op, frozenset({m.group(3)})))
        elif m := _KEY_RE.fullmatch(part):
            requirements.append(Requirement(m.group(2), "!exists" if m.group(1) else "exists"))
        else:
            raise SelectorError(f"unable to parse requirement: {part.strip()!r}")
    return requirements


def _path(*keys: str) -> Callable[[Obj], str]:
    def read(obj: Obj) -> str:
        value: Any = obj
        for key in keys:
            value = (value or {}).get(key) if isinstance(value, Mapping) else None
        return "" if value is None else str(value)

    return read


COMMON_FIELDS = {"metadata.name": _path("metadata", "name"), "metadata.namespace": _path("metadata", "namespace")}
# The fields the real API server accepts in a fieldSelector, per resource (a subset; enough for kvscale).
FIELDS: dict[str, dict[str, Callable[[Obj], str]]] = {
    "pods": {**COMMON_FIELDS, "spec.nodeName": _path("spec", "nodeName"), "status.phase": _path("status", "phase"),
             "status.podIP": _path("status", "podIP")},
    "resourceslices": {**COMMON_FIELDS, "spec.nodeName": _path("spec", "nodeName"),
                       "spec.driver": _path("spec", "driver")},
}


def parse_field_selector(text: str, resource: str = "pods") -> list[tuple[str, bool, str]]:
    """``[(field, equal, value)]``; :class:`SelectorError` for a field the resource does not support."""
    fields = FIELDS.get(resource, COMMON_FIELDS)
    out = []
    for part in filter(str.strip, text.split(",")):
        m = re.fullmatch(r"\s*([A-Za-z.]+)\s*(==|!=|=)\s*(.*?)\s*", part)
        if m is None:
            raise SelectorError(f"invalid field selector: {part!r}")
        if m.group(1) not in fields:
            raise SelectorError(f'field label not supported: {m.group(1)}')
        out.append((m.group(1), m.group(2) != "!=", m.group(3)))
    return out


def matcher(label_selector: str, field_selector: str, resource: str = "pods") -> Callable[[Obj], bool]:
    """One predicate for both selectors; raises :class:`SelectorError` up front."""
    labels = parse_label_selector(label_selector)
    fields = parse_field_selector(field_selector, resource)
    readers = FIELDS.get(resource, COMMON_FIELDS)

    def match(obj: Obj) -> bool:
        obj_labels = (obj.get("metadata") or {}).get("labels") or {}
        return (all(r.matches(obj_labels) for r in labels)
                and all((readers[f](obj) == v) == eq for f, eq, v in fields))

    return match


def translate(kind: str, old: Obj | None, new: Obj, match: Callable[[Obj], bool]) -> tuple[str, Obj] | None:
    """What a filtered watch sees of a change: an object entering the selection is ADDED,
    leaving it is DELETED, and changes wholly outside it are not sent at all."""
    was = old is not None and match(old)
    if kind == "DELETED":
        return ("DELETED", new) if was else None
    now = match(new)
    if was and now:
        return ("MODIFIED", new)
    if now:
        return ("ADDED", new)
    if was:
        return ("DELETED", new)
    return None
