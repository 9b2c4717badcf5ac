"""The text-format reader: what it accepts, what it rejects, and where."""

from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.contract.exposition import ExpositionError, parse, parse_bytes, selection
from tests.conftest import VLLM_FIXTURES


@pytest.mark.parametrize(("line", "name", "labels", "value"), [
    ("a 1\n", "a", {}, 1.0),
    ("a{} 2.5\n", "a", {}, 2.5),
    ('vllm:x{engine="0",model_name="m"} 3e2\n', "vllm:x", {"engine": "0", "model_name": "m"}, 300.0),
    ('x{a="1",} 1\n', "x", {"a": "1"}, 1.0),
    ('x{ a = "1" , b="2" } 1\n', "x", {"a": "1", "b": "2"}, 1.0),
    ('x{a="q\\"uote",b="back\\\\slash",c="new\\nline"} 1\n', "x",
     {"a": 'q"uote', "b": "back\\slash", "c": "new\nline"}, 1.0),
    ('x{a="has } brace"} 1\n', "x", {"a": "has } brace"}, 1.0),
    ('x{a="1"} 1 1700000000000\n', "x", {"a": "1"}, 1.0),
    ('x{a="1"} 1 # {trace_id="abc"} 0.5\n', "x", {"a": "1"}, 1.0),  # OpenMetrics exemplar
    ("x +Inf\n", "x", {}, math.inf),
    ("x -Inf\n", "x", {}, -math.inf),
])
def test_accepts_valid_lines(line: str, name: str, labels: dict[str, str], value: float) -> None:
    [(got_labels, got_value)] = parse(line).samples[name]
    assert got_labels == labels
    assert got_value == value


def test_nan_is_a_valid_sample_value() -> None:
    [(_, value)] = parse("x NaN\n").samples["x"]
    assert math.isnan(value)


@pytest.mark.parametrize(("text", "line", "reason"), [
    ("a 1", 0, "truncated"),
    ("a 1\nb{x=\"1\"} 2\nc{x=\"1 3\n", 3, "unterminated"),
    ("a 1\na 2\n", 2, "duplicate series"),
    ('a{x="1"} 1\nb 1\na{x="1"} 2\n', 3, "duplicate series"),
    ("a 1 2 3\n", 1, "expected 'value"),
    ("a one\n", 1, "bad number"),
    ("a 1_000\n", 1, "bad number"),
    ("1abc 1\n", 1, "invalid metric name"),
    ('a{x="1" y="2"} 1\n', 1, "malformed labels"),
    ('a{x="1",x="2"} 1\n', 1, "repeated"),
    ('a{x=1} 1\n', 1, "malformed labels"),
    ('a{x="\\q"} 1\n', 1, "bad escape"),
    ("# TYPE a gauge\n# TYPE a counter\na 1\n", 2, "second TYPE"),
    ("# TYPE a sometype\n", 1, "unknown metric type"),
    ("# TYPE a\n", 1, "bad TYPE line"),
    ("a 1\x00\n", 0, "NUL"),
])
def test_rejects_malformed_input_with_the_line(text: str, line: int, reason: str) -> None:
    with pytest.raises(ExpositionError, match=reason) as err:
        parse(text)
    assert err.value.line == line


def test_garbage_bytes_are_an_exposition_error() -> None:
    with pytest.raises(ExpositionError, match="not UTF-8"):
        parse_bytes(b"a 1\n\xff\xfe\n")


def test_openmetrics_eof_ends_the_exposition() -> None:
    exp = parse("# TYPE a counter\na_total 1\n# EOF\n")
    assert exp.samples == {"a_total": [({}, 1.0)]}
    assert exp.types == {"a": "counter"}


def test_selection_skips_other_lines_unparsed() -> None:
    text = 'keep{a="1"} 1\nskip{broken 1\nkeep_not 3\nkeep 2\n'
    exp = parse(text, only=selection(["keep"]))
    assert exp.samples == {"keep": [({"a": "1"}, 1.0), ({}, 2.0)]}


@pytest.mark.parametrize("fixture", sorted(p.name for p in VLLM_FIXTURES.glob("*.prom")))
def test_agrees_with_prometheus_client_on_real_expositions(fixture: str) -> None:
    text = (VLLM_FIXTURES / fixture).read_text()
    ours = parse(text)
    theirs: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            theirs.setdefault(s.name, []).append((s.labels, s.value))
    assert ours.samples == theirs
    assert len(ours) == sum(len(v) for v in theirs.values())


@pytest.mark.parametrize("text", [
    'x{a="1"} 1\nx{ a="1"} 2\n',  # the same series with other spacing
    'x{a="1",b="2"} 1\nx{a="1",b="2",} 2\n',  # with a trailing comma
    'x{a="q\\"",b="2"} 1\nx{a = "q\\"", b="2"} 2\n',  # with escapes (the general path both times)
])
def test_duplicates_are_found_whatever_the_spacing(text: str) -> None:
    with pytest.raises(ExpositionError, match="duplicate series"):
        parse(text)


def test_only_an_exact_eof_line_ends_the_exposition() -> None:
    assert parse("# EOFISH comment\na 1\n").samples == {"a": [({}, 1.0)]}
