"""Workloads: CSV traces (errors name the line), the shipped Azure trace, seeded scenarios."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.workload import TraceError, azure_conversation, by_name, load_csv, parse_csv, scenarios
from simulator.workload.scenarios import generate


def test_the_shipped_azure_trace_is_the_published_hour() -> None:
    w = azure_conversation()
    assert len(w.arrivals) == 19_366
    assert w.arrivals[0].at == 0.0 and w.duration == pytest.approx(3501.72, abs=0.01)
    prompts = sorted(a.prompt_tokens for a in w.arrivals)
    assert prompts[len(prompts) // 2] == 1020  # p50 as its README states
    assert sum(a.output_tokens for a in w.arrivals) / len(w.arrivals) == pytest.approx(211, abs=1)


def test_time_scaling_compresses_arrivals() -> None:
    w = azure_conversation().head(600)
    fast = w.scaled(0.25)
    assert len(fast.arrivals) == len(w.arrivals)
    assert fast.duration == pytest.approx(150)
    assert fast.rate() == pytest.approx(4 * w.rate())


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("time,prompt,out\n1,2,3\n", "no arrival column"),
    ("arrival_time,prompt_tokens,output_tokens\n1,2\n", "line 2"),
    ("arrival_time,prompt_tokens,output_tokens\n0,10,5\n-1,2,3\n", "line 3"),
    ("arrival_time,prompt_tokens,output_tokens\n0,0,5\n", "line 2"),
    ("arrival_time,prompt_tokens,output_tokens\n", "no requests"),
])
def test_bad_traces_are_errors_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        parse_csv(text)


def test_csv_trace_is_sorted_and_shifted_to_zero(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("arrival_time,prompt_tokens,output_tokens\n12.5,100,20\n10,50,10\n\n")
    w = load_csv(path)
    assert [(a.at, a.prompt_tokens, a.output_tokens) for a in w.arrivals] == [(0.0, 50, 10), (2.5, 100, 20)]
    with pytest.raises(TraceError, match="cannot read"):
        load_csv(tmp_path / "missing.csv")


def test_scenarios_are_seeded_and_follow_their_shape() -> None:
    spike = scenarios()["spike"]
    a, b, c = generate(spike, seed=1), generate(spike, seed=1), generate(spike, seed=2)
    assert a == b and a != c
    during = sum(1 for x in a.arrivals if 600 <= x.at < 1200) / 600
    before = sum(1 for x in a.arrivals if x.at < 600) / 600
    assert during == pytest.approx(50, rel=0.1) and before == pytest.approx(10, rel=0.15)
    diurnal = by_name("diurnal")
    night = sum(1 for x in diurnal.arrivals if x.at < 300)
    noon = sum(1 for x in diurnal.arrivals if 1650 <= x.at < 1950)
    assert noon > 5 * night
    with pytest.raises(KeyError, match="azure"):
        by_name("nope")
