"""Turn generated rules and dashboards into Helm templates that follow ``.Values.policy``.

The alerts and dashboards packages format policy values in a handful of ways (``number()``,
``duration()``, ``:g``, ``:.0%``, JSON numbers). Rather than re-stating where each value goes,
the generators run with a *sentinel* policy whose every value is recognisable in each of those
forms; each occurrence becomes the Go template helper that formats the value the same way
(``templates/_format.tpl``). A second sentinel policy must give the same template, so a value
used in a form not handled here (arithmetic on it, an unknown format) fails the build instead
of freezing the default into the chart. String fields that may be empty (optional selectors)
change the output's shape, so each string leaf holding one is also rendered with it empty and
the template chooses between the two.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from exporter.contract.policy import Policy, PolicyError, placeholders

# A generator: a policy to a JSON-like tree (dicts, lists, strings, numbers).
Generator = Callable[[Policy], Any]

_HOURS = (37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101, 103, 107, 109, 113, 127, 131,
          137, 139, 149, 151, 157, 163, 167, 173, 179, 181, 191, 193, 197, 199, 211, 223, 227, 229, 233, 239,
          241, 251, 257, 263, 269, 271, 277, 281, 283, 293, 307, 311, 313, 317, 331, 337, 347, 349, 353, 359,
          367, 373, 379, 383, 389, 397, 401, 409, 419, 421, 431, 433, 439, 443, 449, 457, 461, 463, 467, 479)
_TOKEN = re.compile(r"@@K(\d+)@@")


class TemplatingError(RuntimeError):
    """The generated output uses a policy value in a way the chart cannot template."""


@dataclasses.dataclass(frozen=True)
class Sentinels:
    """One sentinel policy and, per field, the text forms to look for (longest first)."""

    values: dict[str, Any]
    forms: dict[str, list[tuple[str, str]]]  # field -> [(text, helper)]


def _fields() -> list[dataclasses.Field[Any]]:
    return list(dataclasses.fields(Policy))


def sentinels(variant: int, empty: frozenset[str] = frozenset()) -> Sentinels:
    """Sentinel values: ratios with distinct whole percents, other floats above 7, seconds in odd hours."""
    values: dict[str, Any] = {}
    forms: dict[str, list[tuple[str, str]]] = {}
    for index, f in enumerate(_fields()):
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        bounds = f.metadata["bounds"]
        if kind == "str":
            text = "" if f.name in empty else _string_sentinel(f.name, f.metadata["unit"], index, variant)
            values[f.name], forms[f.name] = text, [(text, "str")] if text else []
        elif kind == "int":
            seconds = _HOURS[(index + 7 * variant) % len(_HOURS)] * 3600
            values[f.name] = seconds
            forms[f.name] = [(f"{seconds // 3600}h", "duration"), (str(seconds), "int")]
        else:
            bounded = bounds.get("maximum", bounds.get("exclusiveMaximum", 2)) <= 1
            percent = 13 + 2 * index + 3 * variant if bounded else 700 + 100 * index + 10 * variant
            value = round(percent / 100 + 0.0019437, 7)
            values[f.name] = value
            forms[f.name] = [(f"{value * 100:g}%", "pctg"), (f"{value:.0%}", "pct0"),
                             (repr(value), "num"), (f"{value:g}", "g")]
    return Sentinels(values, forms)


def _string_sentinel(name: str, unit: str, index: int, variant: int) -> str:
    if unit == "URL":
        return f"https://kvs-sentinel-{index}-{variant}.invalid/runbooks.md"
    return f'kvs_sentinel_{index}_{variant}="{name}"'


def optional_strings(generators: list[Generator]) -> frozenset[str]:
    """String fields the generators accept empty (their empty value changes the output's shape)."""
    base = sentinels(0).values
    optional = set()
    for f in _fields():
        if f.type not in ("str", str):
            continue
        try:
            with placeholders():
                policy = Policy(**{**base, f.name: ""})
            for generate in generators:
                generate(policy)
        except (PolicyError, ValueError):
            continue
        optional.add(f.name)
    return frozenset(optional)


def _walk(tree: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _walk(value, (*path, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from _walk(value, (*path, i))
    else:
        yield path, tree


def _shape(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _shape(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_shape(v) for v in tree]
    return type(tree).__name__


class _Builder:
    """Collects Go actions behind ``@@K<n>@@`` tokens (one per distinct action) while leaves are rewritten."""

    def __init__(self, sent: Sentinels) -> None:
        self.actions: dict[str, int] = {}
        numeric = [(text, helper, name) for name, forms in sent.forms.items() for text, helper in forms
                   if helper != "str"]
        self.numbers = {v: name for name, v in sent.values.items()
                        if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self.strings = {v: name for name, v in sent.values.items() if isinstance(v, str) and v}
        alternatives = sorted(numeric, key=lambda item: -len(item[0]))
        self.by_text = {text: (helper, name) for text, helper, name in alternatives}
        self.pattern = re.compile("|".join(
            [re.escape(s) for s in sorted(self.strings, key=len, reverse=True)]
            + [rf"(?<![\d.]){re.escape(t)}(?![\d])" for t, _, _ in alternatives]))

    def token(self, action: str) -> str:
        index = self.actions.setdefault(action, len(self.actions))
        return f"@@K{index}@@"

    def helper(self, helper: str, name: str) -> str:
        return self.token(f'{{{{ include "kvscale.fmt.{helper}" .Values.policy.{name} }}}}')

    def string(self, text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            found = match.group(0)
            if found in self.strings:
                return self.helper("str", self.strings[found])
            return self.helper(*self.by_text[found])
        return self.pattern.sub(replace, text)

    def number(self, value: float) -> str | None:
        """A token standing for the whole JSON number (quotes included), or None if not a policy value."""
        name = self.numbers.get(value)
        if name is None:
            return None
        return "@@N" + self.helper("jsonfloat" if isinstance(value, float) else "int", name)[3:]


def _set(tree: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = value


def _leaf_at(tree: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _leaf_template(builder: _Builder, variants: dict[frozenset[str], str], fields: list[str],
                   empty: frozenset[str] = frozenset()) -> str:
    """Nested ``if`` over the optional fields whose emptiness changes this leaf."""
    if not fields:
        return builder.string(variants[empty])
    name, rest = fields[0], fields[1:]
    full = _leaf_template(builder, variants, rest, empty)
    emptied = _leaf_template(builder, variants, rest, empty | {name})
    if full == emptied:
        return full
    return (builder.token(f"{{{{ if .Values.policy.{name} }}}}") + full + builder.token("{{ else }}")
            + emptied + builder.token("{{ end }}"))


def template(generate: Generator, optional: frozenset[str], variant: int = 0) -> str:
    """The generator's JSON (indent 2) as a Go template over ``.Values.policy``."""
    sent = sentinels(variant)
    with placeholders():
        base = generate(Policy(**sent.values))
    dumped = json.dumps(base, ensure_ascii=False)
    used = sorted(name for name in optional if json.dumps(sent.values[name])[1:-1] in dumped)
    renders: dict[frozenset[str], Any] = {}
    for size in range(len(used) + 1):
        for combo in itertools.combinations(used, size):
            empty = frozenset(combo)
            with placeholders():
                renders[empty] = generate(Policy(**sentinels(variant, empty).values))
            if _shape(renders[empty]) != _shape(base):
                raise TemplatingError(f"emptying {sorted(empty)} changes the structure of the output; "
                                      "the chart can only template values inside it")
    builder = _Builder(sent)
    tree = json.loads(json.dumps(base))
    for path, leaf in _walk(base):
        if isinstance(leaf, str):
            variants = {empty: _leaf_at(render, path) for empty, render in renders.items()}
            _set(tree, path, _leaf_template(builder, variants, used))
        elif isinstance(leaf, (int, float)) and not isinstance(leaf, bool):
            token = builder.number(leaf)
            if token is not None:
                _set(tree, path, token)
    text = json.dumps(tree, indent=2, ensure_ascii=False) + "\n"
    # Helm's tpl starts an action at every "{{": a literal brace followed by another brace or by an
    # action (Grafana legends, Prometheus alert templates, PromQL selectors) is written as an action.
    text = re.sub(r"\{(?=\{|@@[KN]\d+@@)", lambda _: builder.token('{{ "{" }}'), text)
    actions = {index: action for action, index in builder.actions.items()}
    text = re.sub(r'"@@N(\d+)@@"', lambda m: actions[int(m.group(1))], text)
    return _TOKEN.sub(lambda m: actions[int(m.group(1))], text)


def checked_template(generate: Generator, optional: frozenset[str]) -> str:
    """``template`` after checking that two different sentinel policies give the same template."""
    first, second = template(generate, optional, 0), template(generate, optional, 1)
    if first != second:
        diff = next(i for i, (a, b) in enumerate(zip(first.splitlines(), second.splitlines(), strict=False))
                    if a != b)
        line_a, line_b = first.splitlines()[diff], second.splitlines()[diff]
        raise TemplatingError(f"a policy value reaches the output in a form the chart cannot template "
                              f"(line {diff + 1}):\n  {line_a.strip()}\n  {line_b.strip()}")
    return first
