"""Kubernetes label selectors: the full string grammar of ``labels.Parse`` and matching.

Grammar: requirements separated by commas; each is ``key=value``, ``key==value``,
``key!=value``, ``key in (a,b)``, ``key notin (a,b)``, ``key`` (exists) or
``!key`` (does not exist). Keys and values are validated as Kubernetes does, so a
malformed selector fails here with a message (a 400 upstream), never later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Operator = Literal["=", "!=", "in", "notin", "exists", "!"]

_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_KEY_RE = re.compile(rf"(?:[a-z0-9]([-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_NAME}\Z")
_VALUE_RE = re.compile(rf"(?:{_NAME})?\Z")
_TOKEN_RE = re.compile(r"\s*(?:(?P<op>==|!=|=|\(|\)|,|!)|(?P<word>[^\s=!(),]+))")


class SelectorError(ValueError):
    """The selector string is malformed."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values


@dataclass(frozen=True)
class Selector:
    """A conjunction of requirements; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if not self.requirements:
            return True
        return all(r.matches(labels) for r in self.requirements)

    def mentions(self, key: str) -> bool:
        return any(r.key == key for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(_render(r) for r in self.requirements)


EVERYTHING = Selector()


def _render(r: Requirement) -> str:
    values = sorted(r.values)
    if r.op == "exists":
        return r.key
    if r.op == "!":
        return f"!{r.key}"
    if r.op in ("in", "notin"):
        return f"{r.key} {r.op} ({','.join(values)})"
    return f"{r.key}{r.op}{values[0]}"


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None or m.end() == pos:
            raise SelectorError(f"unexpected character at position {pos} in {text!r}")
        out.append(m["op"] or m["word"])
        pos = m.end()
    return out


def _check_key(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    if len(name) > 63 or len(key) > 317 or not _KEY_RE.match(key):
        raise SelectorError(f"invalid label key {key!r}")
    return key


def _check_value(value: str) -> str:
    if len(value) > 63 or not _VALUE_RE.match(value):
        raise SelectorError(f"invalid label value {value!r}")
    return value


_OPERATORS = frozenset({"==", "!=", "=", "(", ")", ",", "!"})


def parse_selector(text: str) -> Selector:
    """Parse a label selector string; raises :class:`SelectorError` with the reason."""
    toks = _tokens(text)
    reqs: list[Requirement] = []
    i = 0
    while i < len(toks):
        req, i = _requirement(toks, i)
        reqs.append(req)
        if i < len(toks):
            if toks[i] != ",":
                raise SelectorError(f"expected ',' after {_render(req)!r}, found {toks[i]!r}")
            i += 1
            if i == len(toks):
                raise SelectorError("trailing ',' in selector")
    return Selector(tuple(reqs))


def _word(toks: list[str], i: int, what: str) -> str:
    if i >= len(toks) or toks[i] in _OPERATORS:
        found = toks[i] if i < len(toks) else "end of selector"
        raise SelectorError(f"expected {what}, found {found!r}")
    return toks[i]


def _requirement(toks: list[str], i: int) -> tuple[Requirement, int]:
    if toks[i] == "!":
        return Requirement(_check_key(_word(toks, i + 1, "a label key")), "!"), i + 2
    key = _check_key(_word(toks, i, "a label key"))
    i += 1
    if i == len(toks) or toks[i] == ",":
        return Requirement(key, "exists"), i
    op = toks[i]
    if op in ("=", "==", "!="):
        # An empty value is allowed: "key=" means the label is empty or absent-as-empty.
        nxt = toks[i + 1] if i + 1 < len(toks) else ","
        value = "" if nxt == "," else _check_value(_word(toks, i + 1, "a label value"))
        step = 1 if nxt == "," else 2
        return Requirement(key, "!=" if op == "!=" else "=", frozenset({value})), i + step
    if op == "in":
        return _set_requirement(key, "in", toks, i + 1)
    if op == "notin":
        return _set_requirement(key, "notin", toks, i + 1)
    raise SelectorError(f"unknown operator {op!r} after {key!r}")


def _set_requirement(key: str, op: Literal["in", "notin"], toks: list[str], i: int) -> tuple[Requirement, int]:
    if i >= len(toks) or toks[i] != "(":
        raise SelectorError(f"expected '(' after {key} {op}")
    try:
        close = toks.index(")", i)
    except ValueError:
        raise SelectorError(f"unclosed '(' in {key} {op}") from None
    inner = toks[i + 1:close]
    if not inner:
        raise SelectorError(f"{key} {op} () needs at least one value")
    values: list[str] = []
    current: str | None = None
    for tok in inner:
        if tok == ",":
            values.append(current or "")  # "in (a,,b)" includes the empty value, as in Kubernetes
            current = None
        elif tok in _OPERATORS or current is not None:
            raise SelectorError(f"unexpected {tok!r} in {key} {op} (...)")
        else:
            current = _check_value(tok)
    values.append(current or "")
    return Requirement(key, op, frozenset(values)), close + 1
