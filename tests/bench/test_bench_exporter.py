"""The exporter benchmark's own machinery, run in --quick mode: rows, never timing thresholds."""

from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench import bench_exporter as bench
from exporter.contract.exposition import parse

SMALL = bench.FIXTURE.read_text(encoding="utf-8")


@pytest.mark.parametrize(("lines", "copies"), [(1203, 1), (2000, 2), (5000, 5)])
def test_replicate_grows_the_fixture_with_unique_series(lines: int, copies: int) -> None:
    big = bench.replicate(SMALL, lines)
    exposition = parse(big)  # a repeated series would be an ExpositionError
    running = exposition.samples["vllm:num_requests_running"]
    assert len(running) == 2 * copies  # DP=2: two engines per copy
    assert len({(labels["model_name"], labels["engine"]) for labels, _ in running}) == 2 * copies
    assert abs(big.count("\n") - lines) < 946 / 2  # 946 per-engine lines per copy
    assert len(exposition) == sum(len(f.samples) for f in text_string_to_metric_families(big))


def test_interleaved_alternates_the_functions() -> None:
    calls: list[str] = []
    times = bench.interleaved([lambda: calls.append("a"), lambda: calls.append("b")], 3)
    assert calls == ["a", "b"] * 3
    assert [len(t) for t in times] == [3, 3]
    assert all(t >= 0 for series in times for t in series)


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([3.0, 1.0, 2.0], 0.5, 2000.0),
    ([0.004, 0.001, 0.002, 0.003], 0.5, 2.5),
    ([float(i) for i in range(100)], 0.99, 99000.0),
    ([float(i) for i in range(100)], 0.95, 95000.0),
])
def test_ms_quantiles(values: list[float], q: float, expected: float) -> None:
    assert bench._ms(values, q) == pytest.approx(expected)


def _check(rows: list[bench.Row], expected_prefixes: list[str]) -> None:
    names = [r.name for r in rows]
    for prefix in expected_prefixes:
        assert any(name.startswith(prefix) for name in names), (prefix, names)
    for row in rows:
        assert math.isfinite(row.value) and row.value > 0, row
        assert (row.ok is None) == (row.target == ""), row
    text = bench.table(rows)
    assert all(row.name in text for row in rows)


def test_quick_run_produces_every_row() -> None:
    rows = bench.run_all(bench.QUICK)
    _check(rows, [
        "reader: exposition.parse, full, 4987 lines", "reader: prometheus_client parser, 4987 lines",
        "reader: speed-up of the full parse", "reader: scrape.decode", "reader: speed-up of scrape.decode",
        "collection: run_cycle, 8 DP=2 targets, wall median", "collection: run_cycle, 8 DP=2 targets, wall p95",
        "collection: run_cycle, 8 DP=2 targets, exporter CPU", "/metrics, 20 scrapers x 10 back to back",
        "/metrics, 20 scrapers x 10 paced", "exporter process RSS", "import RSS: exporter.app",
        "import RSS: + exporter.vllm.kube_targets", "import RSS: cost of the kubernetes client",
    ])
    assert len(rows) == 19
