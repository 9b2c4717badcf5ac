"""Series missing from a scrape, and name sets that change, end to end (issue 11, defect 4).

The target serves a steady engine: 100 generation tokens per second and 10 requests per
second whose first token takes 0.06-0.08 s (TTFT p50 = 0.07). Whatever is missing from a
scrape, or renamed between scrapes, every published rate stays 100/s (never negative,
never 0) and the median stays 0.07, as PromQL's per-series ``increase`` gives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from tests.exporter.helpers import Body, ManualClock, by_pod, exporter_over

BOUNDS = ("0.02", "0.04", "0.06", "0.08", "0.1", "0.25", "+Inf")


def exposition(t: float, *, drop: Callable[[str], bool] = lambda line: False, old_names: bool = False,
               prefix: str = "vllm:") -> str:
    """A steady engine at time ``t``; ``drop`` removes lines, ``old_names`` uses pre-0.10 names."""
    usage = "gpu_cache_usage_perc" if old_names else "kv_cache_usage_perc"
    queries = "gpu_prefix_cache_queries_total" if old_names else "prefix_cache_queries_total"
    hits = "gpu_prefix_cache_hits_total" if old_names else "prefix_cache_hits_total"
    itl = "time_per_output_token_seconds" if old_names else "inter_token_latency_seconds"
    labels = 'engine="0",model_name="m"'
    lines = [
        f"# TYPE {prefix}num_requests_running gauge", f"{prefix}num_requests_running{{{labels}}} 4",
        f"# TYPE {prefix}{usage} gauge", f"{prefix}{usage}{{{labels}}} 0.5",
        f"# TYPE {prefix}generation_tokens_total counter", f"{prefix}generation_tokens_total{{{labels}}} {100 * t}",
        f"# TYPE {prefix}{queries} counter", f"{prefix}{queries}{{{labels}}} {50 * t}",
        f"# TYPE {prefix}{hits} counter", f"{prefix}{hits}{{{labels}}} {25 * t}",
    ]
    for family in ("time_to_first_token_seconds", itl):
        lines.append(f"# TYPE {prefix}{family} histogram")
        for le in BOUNDS:
            count = 0 if float(le) <= 0.06 else 10 * t  # every request between 0.06 and 0.08 s
            lines.append(f'{prefix}{family}_bucket{{{labels},le="{le}"}} {count}')
    return "\n".join(line for line in lines if not drop(line)) + "\n"


Scenario = tuple[Callable[[int], str], int]
"""The exposition at second i, and the scrape (or -1) whose newest reading lacks a series."""

SCENARIOS: dict[str, Scenario] = {
    # The counter is missing from one scrape (the report: -401.7/s for 59 s).
    "counter missing once": (lambda i: exposition(i, drop=lambda line: i == 5 and "generation_tokens_total{" in line),
                             5),
    # One bucket missing from one scrape (the report: TTFT p50 0.07 -> 1.0).
    "bucket missing once": (lambda i: exposition(i, drop=lambda line: i == 5 and 'le="0.08"' in line), 5),
    "lower bucket missing once": (lambda i: exposition(i, drop=lambda line: i == 5 and 'le="0.06"' in line), 5),
    "histogram missing once": (lambda i: exposition(i, drop=lambda line: i == 5 and "time_to_first" in line), -1),
    # A target alternating between two vLLM versions' names (the report: every rate exactly 0).
    "names alternate between versions": (lambda i: exposition(i, old_names=bool(i % 2)), -1),
    "prefixes alternate (OpenMetrics)": (lambda i: exposition(i, prefix="vllm_" if i % 2 else "vllm:"), -1),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_rates_and_quantiles_hold_through_gaps_and_renames(scenario: str) -> None:
    make, lacking = SCENARIOS[scenario]
    body = Body(make(0))
    clock = ManualClock(1000.0)
    async with exporter_over({"p": body}, clock) as exp:
        await exp.run_cycle()
        for i in range(1, 10):
            body.text = make(i)
            clock.now = 1000.0 + i
            series = await exp.run_cycle()
            assert by_pod(series, "kvscale_vllm_up") == {"p": 1.0}
            rate = by_pod(series, "kvscale_vllm_generation_tokens_per_second")["p"]
            medians = [by_pod(series, family)["p/0.5"] for family in
                       ("kvscale_vllm_ttft_seconds", "kvscale_vllm_inter_token_latency_seconds")]
            if i == lacking:
                # The newest scrape lacks a series: it counts the samples it has (no extrapolation),
                # so the figure dips by at most one interval's share, and stays in the true bucket.
                assert 100.0 * (i - 1) / i <= rate <= 100.0, (i, rate)
                assert all(0.06 < p50 <= 0.08 for p50 in medians), (i, medians)
            else:
                assert rate == pytest.approx(100.0), (i, rate)
                assert medians == [pytest.approx(0.07)] * 2, (i, medians)
            assert by_pod(series, "kvscale_vllm_prefix_cache_hit_ratio") == {"p": pytest.approx(0.5)}


def test_only_the_newest_observation_keeps_its_reading() -> None:
    from exporter.contract.exposition import parse
    from exporter.vllm.reading import read
    from exporter.vllm.window import History

    history = History(60)
    for i in range(10):
        history.add(float(i), read(parse(exposition(i))))
    assert [bool(obs.reading.engines) for obs in history.span()] == [False] * 9 + [True]


async def test_windowed_families_are_absent_until_the_readings_span_the_minimum() -> None:
    body = Body(exposition(0))
    clock = ManualClock(1000.0)
    windowed = {"kvscale_vllm_generation_tokens_per_second", "kvscale_vllm_ttft_seconds",
                "kvscale_vllm_prefix_cache_hit_ratio"}
    async with exporter_over({"p": body}, clock) as exp:
        exp.vllm._policy = replace(exp.vllm._policy, min_span_seconds=3.0)
        seen = []
        for i in range(6):
            body.text = exposition(i)
            clock.now = 1000.0 + i
            series = await exp.run_cycle()
            seen.append(windowed & {s.family for s in series})
            assert by_pod(series, "kvscale_vllm_requests_running") == {"p": 4.0}  # gauges from the start
    assert seen == [set()] * 3 + [windowed] * 3
    assert by_pod(series, "kvscale_vllm_generation_tokens_per_second") == {"p": pytest.approx(100.0)}


def test_the_minimum_span_setting_reaches_the_derivation() -> None:
    from exporter.settings import build

    with pytest.raises(Exception, match="window_min_ratio"):
        build([("test", {"window_min_ratio": 1.5})])
    assert build([("test", {})]).window_min_ratio == 0.2
