"""A fast, strict reader for the Prometheus text format (0.0.4) and OpenMetrics text.

Pure: text in, samples out. It does per line what a scraper must (name check,
label unescaping, value parse, duplicate check) with C-level string operations on
the common path and a character parser only for lines with escapes. Any malformed
line raises :class:`ExpositionError` naming the line; nothing is guessed.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

Labels = dict[str, str]
SampleList = list[tuple[Labels, float]]

_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*+\Z")
_LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*+\Z")
# Every pattern here is possessive (``*+``, ``++``, ``?+``): no quantifier gives back what it
# took, so each match is one left-to-right pass, linear in the line, whatever the input.
# A backtracking ``\s*,?\s*$`` was quadratic in a run of spaces (66 s on a 100 kB line).
# Common case: no backslash in the label block. Pairs are validated by length below.
_PAIR_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*+)\s*+=\s*+"([^"]*+)"')
# A whole label block without escapes: pairs separated by commas, optional trailing comma.
_BLOCK_RE = re.compile(r'\s*+(?:[a-zA-Z_][a-zA-Z0-9_]*+\s*+=\s*+"[^"]*+"\s*+(?:,\s*+(?=[a-zA-Z_])|,?+\s*+\Z))*+')
# The fast path takes label blocks written canonically (no spaces, no trailing comma, no
# escapes), which is how client libraries write them; its series key is the block text,
# and the general path builds the same text from what it parsed, so duplicates meet.
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*+="[^"\\]*+"'
_SAMPLE_RE = re.compile(
    r"([a-zA-Z_:][a-zA-Z0-9_:]*+)"
    r"(?:\{(" + _LABEL + r"(?:," + _LABEL + r")*+)?+\})?+"
    r"[ \t]++([^ \t_]++)(?:[ \t]++-?+[0-9]++)?+[ \t]*+\Z")
_TYPES = frozenset({"counter", "gauge", "histogram", "summary", "untyped", "unknown", "info",
                    "stateset", "gaugehistogram"})


class ExpositionError(ValueError):
    """The exposition is malformed; ``line`` is 1-based (0 when not tied to a line)."""

    def __init__(self, reason: str, line: int = 0) -> None:
        super().__init__(f"line {line}: {reason}" if line else reason)
        self.reason = reason
        self.line = line


@dataclass
class Exposition:
    """Samples grouped by sample name, in exposition order, and the declared family types."""

    samples: dict[str, SampleList] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(len(v) for v in self.samples.values())


@dataclass(frozen=True)
class Selection:
    """The sample names to read; ``prefixes`` is a cheap pre-filter on the line start."""

    names: frozenset[str]
    prefixes: tuple[str, ...]


def selection(sample_names: Iterable[str]) -> Selection:
    """A :class:`Selection` of exactly these sample names, for ``parse(only=...)``."""
    names = frozenset(sample_names)
    return Selection(names, tuple(sorted({name[:5] for name in names})))


def parse_bytes(body: bytes, *, only: Selection | None = None) -> Exposition:
    """Decode (UTF-8, strict) and parse; undecodable bytes are an :class:`ExpositionError`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ExpositionError(f"not UTF-8 at byte {exc.start}") from exc
    return parse(text, only=only)


def parse(text: str, *, only: Selection | None = None) -> Exposition:
    """Parse an exposition. Raises :class:`ExpositionError` on the first bad line read.

    ``only`` (from :func:`selection`) restricts the sample lines read: the others
    are never parsed, which is what makes a scrape of a large vLLM exposition
    cheap. TYPE lines are always read.
    """
    if text and not text.endswith("\n"):
        raise ExpositionError("truncated: the exposition does not end with a newline")
    if "\x00" in text:
        raise ExpositionError("NUL byte in exposition")
    # OpenMetrics ends with a '# EOF' line (exactly that line, not any comment starting so).
    eof = text.find("\n# EOF\n")
    if eof >= 0 or text.startswith("# EOF\n"):
        text = text[: eof + 1] if eof >= 0 else ""
    # Parsing allocates a few objects per line and frees none: a cyclic GC pass here would
    # only rescan them (up to a third of the parse time), so the collector waits.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _parse(text, only)
    finally:
        if was_enabled:
            gc.enable()


def _parse(text: str, only: Selection | None) -> Exposition:
    out = Exposition()
    lines = text.split("\n")
    if only is not None:
        for line in lines:
            if line.startswith("# TYPE"):
                _type_line(out, line, text)
        names, prefixes = only.names, only.prefixes
        lines = [line for line in lines
                 if line.startswith(prefixes) and line.partition("{")[0].partition(" ")[0] in names]
    reader = _SampleReader(out)
    # The common line (no escapes, no exemplar) is matched whole by one regex; anything
    # else, including every malformed line, takes the general path, which names the fault.
    match, pairs_of, seen, samples = _SAMPLE_RE.match, _PAIR_RE.findall, reader.seen, out.samples
    for line in lines:
        if not line or line[0] == "#":
            if only is None and line.startswith("# TYPE"):
                _type_line(out, line, text)
            continue
        m = match(line)
        if m is None:
            reader.add(line, text)
            continue
        name, block, raw = m.group(1, 2, 3)
        if block:
            pairs = pairs_of(block)
            labels = dict(pairs)
            if len(labels) != len(pairs):
                raise ExpositionError("label name repeated", _lineno(text, line))
            ident = (name, block)
        else:
            labels, ident = {}, (name, "")
        try:
            value = float(raw)  # the regex excludes '_', which float() would accept
        except ValueError:
            raise ExpositionError(f"bad number {raw[:40]!r}", _lineno(text, line)) from None
        before = len(seen)
        seen.add(ident)
        if len(seen) == before:
            raise ExpositionError(f"duplicate series {name}{{{(block or '')[:200]}}}", _lineno(text, line))
        bucket = samples.get(name)
        if bucket is None:
            samples[name] = [(labels, value)]
        else:
            bucket.append((labels, value))
    return out


def _series_key(labels: Labels) -> str:
    """The canonical label block of a series (the fast path's key), in written order."""
    return ",".join(f'{k}="{v}"' for k, v in labels.items())


def _type_line(out: Exposition, line: str, text: str) -> None:
    parts = line.split()
    if len(parts) != 4:
        raise ExpositionError(f"bad TYPE line {line[:120]!r}", _lineno(text, line))
    _declare(out, parts[2], parts[3], line, text)


def _lineno(text: str, line: str) -> int:
    """1-based number of the first line equal to ``line`` (only computed for an error)."""
    offset = 0 if text.startswith(line + "\n") else text.find("\n" + line + "\n") + 1
    return text.count("\n", 0, offset) + 1


def _declare(out: Exposition, name: str, kind: str, line: str, text: str) -> None:
    if kind not in _TYPES:
        raise ExpositionError(f"unknown metric type {kind[:40]!r} for {name[:80]}", _lineno(text, line))
    if name in out.types:
        raise ExpositionError(f"second TYPE line for {name[:80]}", _lineno(text, line))
    out.types[name] = kind


class _SampleReader:
    """Adds sample lines to an exposition; errors carry the line number (computed only then)."""

    def __init__(self, out: Exposition) -> None:
        self.samples = out.samples
        self.seen: set[tuple[str, str]] = set()
        self.names_ok: set[str] = set()

    def add(self, line: str, text: str) -> None:
        try:
            self._add(line)
        except ExpositionError as exc:
            raise ExpositionError(exc.reason, _lineno(text, line)) from None

    def _add(self, line: str) -> None:
        brace = line.find("{")
        if brace < 0:
            name, _, rest = line.partition(" ")
            labels: Labels = {}
            key = ""
        else:
            name = line[:brace]
            close = line.find("}", brace)
            block = line[brace + 1:close] if close > 0 else ""
            if close < 0 or "\\" in block or block.count('"') % 2:
                labels, end = _labels_slow(line, brace + 1)
                block, rest = line[brace + 1:end - 1], line[end:]
            else:
                labels = _labels_fast(block)
                rest = line[close + 1:]
            key = block
        if name not in self.names_ok:
            if not _NAME_RE.match(name):
                raise ExpositionError(f"invalid metric name {name[:80]!r}")
            self.names_ok.add(name)
        value = _value(rest)
        ident = (name, _series_key(labels))
        if ident in self.seen:
            raise ExpositionError(f"duplicate series {name}{{{key[:200]}}}")
        self.seen.add(ident)
        bucket = self.samples.get(name)
        if bucket is None:
            self.samples[name] = [(labels, value)]
        else:
            bucket.append((labels, value))


def _labels_fast(block: str) -> Labels:
    if not _BLOCK_RE.fullmatch(block):
        raise ExpositionError(f"malformed labels {{{block[:120]}}}")
    pairs = _PAIR_RE.findall(block)
    labels = dict(pairs)
    if len(labels) != len(pairs):
        raise ExpositionError("label name repeated")
    return labels


_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


def _labels_slow(line: str, i: int) -> tuple[Labels, int]:
    """Parse labels from ``line[i:]`` (just past '{') with escapes; return labels and index past '}'."""
    labels: Labels = {}
    n = len(line)
    while True:
        while i < n and line[i] in " ,":
            i += 1
        if i < n and line[i] == "}":
            return labels, i + 1
        eq = line.find("=", i)
        quote = eq + 1
        while 0 < quote < n and line[quote] == " ":
            quote += 1
        if eq < 0 or quote >= n or line[quote] != '"':
            raise ExpositionError("malformed labels")
        lname = line[i:eq].strip()
        if not _LABEL_NAME_RE.match(lname) or lname in labels:
            raise ExpositionError(f"bad or repeated label name {lname[:80]!r}")
        j, chars = quote + 1, []
        while j < n and line[j] != '"':
            if line[j] == "\\":
                esc = _ESCAPES.get(line[j + 1]) if j + 1 < n else None
                if esc is None:
                    raise ExpositionError("bad escape in label value")
                chars.append(esc)
                j += 2
            else:
                chars.append(line[j])
                j += 1
        if j >= n:
            raise ExpositionError("unterminated label value")
        labels[lname] = "".join(chars)
        i = j + 1
        if i < n and line[i] not in ",}":
            raise ExpositionError("expected ',' or '}' after label value")


def _value(rest: str) -> float:
    fields = rest.split()
    # Fields: value [timestamp] [# exemplar...] (OpenMetrics exemplars follow a '#').
    if not fields or (len(fields) > 2 and fields[1] != "#" and fields[2] != "#"):
        raise ExpositionError(f"expected 'value [timestamp]', got {rest[:80]!r}")
    try:
        value = float(fields[0])
        if len(fields) >= 2 and fields[1] != "#":
            float(fields[1])
    except ValueError:
        raise ExpositionError(f"bad number in {rest.strip()[:80]!r}") from None
    if "_" in fields[0]:
        raise ExpositionError(f"bad number {fields[0][:40]!r}")
    return value
