"""Property tests of the reader: no input crashes it, and what prometheus_client writes reads back exactly.

"Never crashes" means: ``parse``/``parse_bytes`` (with and without ``only=``) return or raise
:class:`ExpositionError`, and ``scrape.decode`` returns or raises :class:`ScrapeError`; any
other exception is a bug. Inputs are the real vLLM fixtures, mutated the ways a broken
engine, proxy or network mangles them, plus random and grammar-built expositions.
Settings are derandomized, so CI runs the same examples every time.
"""

from __future__ import annotations

import contextlib
import math
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from exporter.contract.exposition import Exposition, ExpositionError, Selection, parse, parse_bytes, selection
from exporter.vllm.reading import SELECTION, PodReading
from exporter.vllm.scrape import ScrapeError, decode
from tests.conftest import VLLM_FIXTURES
from tests.exporter.contract.exposition_mutations import BAD_VALUES, mutated, respace, shuffle_lines

FIXTURES = [path.read_bytes() for path in sorted(VLLM_FIXTURES.glob("*.prom"))]
PROPERTY = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MANY = settings(PROPERTY, max_examples=200)  # the cheap, most telling property gets more examples
FEW = settings(PROPERTY, max_examples=25)  # each example parses two whole fixtures

# A selection that is not vLLM's: names that are in the fixtures, and some that are not.
OTHER = selection(["python_gc_objects_collected_total", "process_open_fds", "vllm:num_requests_running",
                   "x", "a:b"])


def read_all_ways(body: bytes) -> Exposition | None:
    """Every reader entry point on ``body``; the full parse, or None when it was rejected."""
    full: Exposition | None
    try:
        full = parse_bytes(body)
    except ExpositionError:
        full = None
    if full is not None:  # every sample line read became exactly one sample
        assert len(full) == _sample_line_count(body.decode("utf-8"))
    for only in (SELECTION, OTHER):
        try:
            part = parse_bytes(body, only=only)
        except ExpositionError:
            assert full is None, "a selection from an exposition that reads cleanly was rejected"
            continue
        if full is not None:
            assert_restriction(full, part, only)
    text = body.decode("utf-8", errors="replace")
    for maybe in (None, SELECTION):  # the str entry point, on text with replacement characters
        with contextlib.suppress(ExpositionError):
            parse(text, only=maybe)
    try:
        assert isinstance(decode(body), PodReading)
    except ScrapeError as exc:
        assert exc.reason in ("parse", "invalid")
    return full


def _sample_line_count(text: str) -> int:
    """Sample lines up to an OpenMetrics ``# EOF`` (the reader stops there)."""
    lines = text.split("\n")
    end = next((i for i, line in enumerate(lines) if line.startswith("# EOF")), len(lines))
    return sum(1 for line in lines[:end] if line and not line.startswith("#"))


def assert_restriction(full: Exposition, part: Exposition, only: Selection) -> None:
    """Reading only some names gives exactly those names' samples of the full read."""
    expected = {name: samples for name, samples in full.samples.items() if name in only.names}
    assert _comparable(part.samples) == _comparable(expected)
    assert part.types == full.types


def _comparable(samples: dict[str, list[tuple[dict[str, str], float]]]) -> dict[str, list[Any]]:
    # NaN != NaN: compare values by their text so a NaN sample equals itself.
    return {name: [(labels, repr(value)) for labels, value in rows] for name, rows in samples.items()}


def mutated_fixtures() -> st.SearchStrategy[bytes]:
    return mutated(FIXTURES)


def test_the_unmutated_fixtures_read_cleanly() -> None:
    for body in FIXTURES:  # the baseline the mutations start from must itself be valid
        full = read_all_ways(body)
        assert full is not None and len(full) > 0
        assert decode(body).engines


@MANY
@given(mutated_fixtures())
def test_mutated_fixtures_never_crash_the_reader(body: bytes) -> None:
    read_all_ways(body)


@FEW
@given(st.sampled_from(FIXTURES), st.data())
def test_shuffled_fixture_reads_the_same_samples(body: bytes, data: st.DataObject) -> None:
    # Line order carries no meaning for the sample set (TYPE lines are read first).
    shuffled = shuffle_lines(body, random.Random(data.draw(st.integers(0, 2**32 - 1))))
    original, moved = parse_bytes(body), parse_bytes(shuffled)
    assert {k: sorted(map(repr, v)) for k, v in original.samples.items()} == \
        {k: sorted(map(repr, v)) for k, v in moved.samples.items()}
    assert moved.types == original.types


@FEW
@given(st.sampled_from(FIXTURES), st.integers(0, 2**32 - 1))
def test_whitespace_inside_braces_changes_no_sample(body: bytes, seed: int) -> None:
    respaced = respace(body, random.Random(seed))
    assert respaced != body
    for only in (None, SELECTION):
        assert _comparable(parse_bytes(respaced, only=only).samples) == \
            _comparable(parse_bytes(body, only=only).samples)


# --- random and grammar-built input ----------------------------------------------------------

@PROPERTY
@given(st.binary(max_size=400))
def test_random_bytes_never_crash_the_reader(body: bytes) -> None:
    read_all_ways(body)


_PIECES = st.sampled_from([
    "vllm:", "vllm_", "num_requests_running", "kv_cache_usage_perc", "gpu_cache_usage_perc",
    "time_to_first_token_seconds_bucket", "cache_config_info", "prompt_tokens_total", "x", "{", "}", '"',
    "=", ",", " ", "\\", "\\n", '\\"', "\n", "#", "# TYPE ", "# HELP ", "# EOF", "counter", "gauge",
    "histogram", "summary", "engine", "model_name", "le", "num_gpu_blocks", "block_size", "0", "1", "-1",
    "0.5", "1e3", "+Inf", "-Inf", "NaN", "inf", "None", "\t", "\x00", "é", "_", ":", "1_0",
])


@PROPERTY
@given(st.lists(_PIECES, max_size=80).map("".join))
def test_exposition_like_noise_never_crashes_the_reader(text: str) -> None:
    read_all_ways(text.encode())
    read_all_ways((text + "\n").encode())


_NAME = st.from_regex(r"\A(vllm[:_])?[a-zA-Z_:][a-zA-Z0-9_:]{0,12}\Z")
_LABEL = st.sampled_from(["engine", "model_name", "le", "num_gpu_blocks", "block_size",
                          "kv_cache_size_tokens", "a", "_b", "le"])
_VALUE_TEXT = st.one_of(st.floats().map(repr), st.sampled_from(BAD_VALUES), st.text(max_size=6))


@st.composite
def sample_lines(draw: st.DrawFn) -> str:
    """A plausible sample line: valid name and label structure, arbitrary label values and value."""
    name = draw(st.sampled_from(sorted(SELECTION.names)) | _NAME)
    pairs = draw(st.lists(st.tuples(_LABEL, st.text(max_size=8) | _VALUE_TEXT), max_size=4))
    block = ",".join(f'{k}="{v}"' for k, v in pairs)
    empty_braces = draw(st.booleans())
    labels = f"{{{block}}}" if pairs or empty_braces else ""
    return f"{name}{labels} {draw(_VALUE_TEXT)}"


@PROPERTY
@given(st.lists(sample_lines() | st.sampled_from(["# TYPE vllm:x counter", "# HELP a b", ""]), max_size=20))
def test_grammar_built_expositions_never_crash_the_reader(lines: list[str]) -> None:
    read_all_ways(("\n".join(lines) + "\n").encode("utf-8", errors="surrogatepass"))


def _comparable_flat(rows: list[tuple[str, dict[str, str], float]]) -> list[tuple[str, list[Any], str]]:
    # prometheus_client returns ints for integral values and keeps -0; compare the numbers, NaN as text.
    return sorted((name, sorted(labels.items()), "nan" if math.isnan(v) else repr(float(v) + 0.0))
                  for name, labels, v in rows)


@PROPERTY
@given(st.lists(sample_lines() | st.sampled_from(["# TYPE vllm:x counter", "# HELP a b \\n", ""]), max_size=8))
def test_where_both_parsers_accept_they_agree(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"
    try:
        ours = parse(text)
    except ExpositionError:
        return  # ours is stricter: that is allowed
    try:
        theirs = [(s.name, s.labels, float(s.value)) for f in text_string_to_metric_families(text) for s in f.samples]
    except Exception:  # the reference parser rejects with assorted exception types
        return
    flat = [(name, labels, value) for name, rows in ours.samples.items() for labels, value in rows]
    assert _comparable_flat(flat) == _comparable_flat(theirs)


# --- round trip against prometheus_client ----------------------------------------------------

# Label values: anything prometheus_client can write except NUL, which the reader rejects on
# purpose (no Prometheus text parser accepts it either) and surrogates (not encodable as UTF-8).
_LABEL_VALUE = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12) | \
    st.sampled_from(['"', "\\", "\n", '\\"', "\\n", 'a\\"b\n"c', "}", "{", ",", "=", " ", "# x"])
_FAMILY_BASE = st.from_regex(r"\A[a-zA-Z_:][a-zA-Z0-9_:]{0,10}\Z")
_LABEL_NAME = st.from_regex(r"\A[a-zA-Z][a-zA-Z0-9_]{0,8}\Z").filter(lambda n: n not in ("le", "quantile"))
_FINITE = st.floats(allow_nan=False, allow_infinity=False)


def _go_float(value: float) -> str:
    """A bucket bound as Prometheus writes it ("+Inf", "0.5")."""
    return "+Inf" if value == math.inf else repr(value)


@st.composite
def families(draw: st.DrawFn) -> list[Metric]:
    out: list[Metric] = []
    for index in range(draw(st.integers(1, 4))):
        # The _fN suffix keeps sample names unique across families (a counter adds _total).
        name = f"{draw(_FAMILY_BASE)}_f{index}"
        labels = draw(st.lists(_LABEL_NAME, max_size=3, unique=True))
        doc = draw(st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20))
        kind = draw(st.sampled_from(["gauge", "counter", "histogram"]))
        rows = draw(st.lists(st.tuples(*[_LABEL_VALUE] * len(labels)), max_size=3, unique=True))
        family: Metric
        if kind == "histogram":
            histogram = family = HistogramMetricFamily(name, doc, labels=labels)
            for label_values in rows:
                bounds = sorted(set(draw(st.lists(_FINITE, max_size=3))))
                counts = sorted(draw(st.lists(st.integers(0, 10**6), min_size=len(bounds) + 1,
                                              max_size=len(bounds) + 1)))
                buckets = [(_go_float(b), float(c)) for b, c in zip([*bounds, math.inf], counts, strict=True)]
                histogram.add_metric(list(label_values), buckets, draw(_FINITE))
        else:
            simple = family = (GaugeMetricFamily if kind == "gauge" else CounterMetricFamily)(name, doc, labels=labels)
            for label_values in rows:
                simple.add_metric(list(label_values), draw(_FINITE))
        out.append(family)
    return out


class _Fixed(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> list[Metric]:
        return self.metrics


@PROPERTY
@given(families())
def test_prometheus_client_output_reads_back_like_its_own_parser(metrics: list[Metric]) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(metrics))
    text = generate_latest(registry).decode("utf-8")

    theirs = sorted((s.name, sorted(s.labels.items()), s.value)
                    for family in text_string_to_metric_families(text) for s in family.samples)
    ours = sorted((name, sorted(labels.items()), value)
                  for name, rows in parse(text).samples.items() for labels, value in rows)
    assert ours == theirs
    assert parse_bytes(text.encode()).samples == parse(text).samples
