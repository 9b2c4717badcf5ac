"""The exporter over vLLM's own expositions: every catalog vLLM family against the chosen stats."""

from __future__ import annotations

import pytest

from exporter.collector import Series
from exporter.contract.catalog import of_subsystem
from exporter.contract.exposition import parse
from tests.exporter.helpers import Body, ManualClock
from tests.vllm import expected
from tests.vllm.conftest import PRICE, Rendered, exporter_over, settings
from tests.vllm.renderer import version_tuple
from tests.vllm.scenarios import STEP_SECONDS

pytestmark = pytest.mark.vllm

# Families the exporter serves without vLLM's input, or from the plugin (tests/vllm/test_plugin.py).
NOT_FROM_STATS = {"kvscale_vllm_up", "kvscale_vllm_latency_source_info"}


def values(series: list[Series], pod: str) -> dict[tuple[str, str], float]:
    return {(s.family, s.labels.get("quantile", "")): s.value for s in series
            if s.family.startswith("kvscale_vllm_") and s.labels.get("pod") == pod}


SCENARIOS = ["single-engine", "dp2-unequal", "restart", "custom-buckets"]


@pytest.mark.parametrize("name", SCENARIOS)
async def test_every_vllm_family_equals_what_the_chosen_stats_give(rendered: Rendered, name: str) -> None:
    if name not in rendered.scenarios:
        assert version_tuple(rendered.version) < (0, 32)  # custom buckets are 0.32's
        return
    scenario, renders = rendered.scenarios[name], rendered.renders[name]
    body, clock = Body(renders[0].body), ManualClock()
    policy = settings().policy
    quantiles = tuple(settings().quantiles)
    async with exporter_over({"p": body}, clock) as exporter:
        for step, render in enumerate(renders):
            body.text, clock.now = render.body, step * STEP_SECONDS
            series = values(await exporter.run_cycle(), "p")
            want = {(f, ""): v for f, v in expected.gauges(scenario, step).items()}
            want[("kvscale_vllm_up", "")] = 1.0
            if step > 0:
                want.update(expected.windowed(scenario, step, quantiles, PRICE,
                                              admission=version_tuple(rendered.version) >= (0, 32)))
            if scenario.plugins:  # the plugin's exact quantiles of every value recorded so far (its own window)
                want = {k: v for k, v in want.items() if not k[1]}
                want.update(expected.exact(scenario, step, quantiles))
            want[("kvscale_vllm_saturation_ratio", "")] = expected.saturation(scenario, step, policy)
            got = {k: v for k, v in series.items() if k[0] not in NOT_FROM_STATS or k[0] == "kvscale_vllm_up"}
            assert got.keys() == want.keys(), f"step {step}"
            for key, value in want.items():
                assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (step, key)
    covered = {family for family, _ in got}
    catalog = {f.name for f in of_subsystem("vllm")} - NOT_FROM_STATS | {"kvscale_vllm_up"}
    if version_tuple(rendered.version) < (0, 32):
        catalog.discard("kvscale_vllm_admission_rejections_per_second")  # no admission limits before 0.32
    assert covered == catalog


def test_custom_buckets_reach_the_exposition(rendered: Rendered) -> None:
    if "custom-buckets" not in rendered.scenarios:
        assert version_tuple(rendered.version) < (0, 32)
        return
    text = rendered.renders["custom-buckets"][-1].body
    exp = parse(text)
    les = sorted({float(labels["le"]) for labels, _ in exp.samples["vllm:time_to_first_token_seconds_bucket"]})
    assert les == [0.1, 0.2, 0.4, 0.8, 1.6, float("inf")]
    les = sorted({float(labels["le"]) for labels, _ in exp.samples["vllm:request_num_preemptions_bucket"]})
    assert les == [1.0, 3.0, float("inf")]
    preemptions = [f.preemptions for s in rendered.scenarios["custom-buckets"].steps for r in s.records
                   if r.iteration for f in r.iteration.finished]
    counts = {labels["le"]: v for labels, v in exp.samples["vllm:request_num_preemptions_bucket"]}
    assert counts == {"1.0": sum(p <= 1 for p in preemptions), "3.0": sum(p <= 3 for p in preemptions),
                      "+Inf": len(preemptions)}
    assert max(preemptions) == 4 and counts["3.0"] < counts["+Inf"]


def test_the_families_of_0_32_carry_the_chosen_counts(rendered: Rendered) -> None:
    """Admission rejections by reason (frontend, no engine label) and cached prompt tokens by source."""
    scenario = rendered.scenarios["dp2-unequal"]
    exp = parse(rendered.renders["dp2-unequal"][-1].body)
    if version_tuple(rendered.version) < (0, 32):
        assert "vllm:admission_rejections_total" not in exp.samples
        return
    rejected = {labels["reason"]: v for labels, v in exp.samples["vllm:admission_rejections_total"]}
    assert all("engine" not in labels for labels, _ in exp.samples["vllm:admission_rejections_total"])
    assert rejected == {reason: sum(s.rejections.get(reason, 0) for s in scenario.steps)
                        for reason in ("max_num_queued_reqs", "max_num_queued_tokens")}
    by_source = {(labels["engine"], labels["source"]): v for labels, v in
                 exp.samples["vllm:prompt_tokens_cached_by_source_total"]}
    for engine, _ in scenario.engines:
        scheds = [r.scheduler for s in scenario.steps for r in s.records if r.engine == engine and r.scheduler]
        # device = the local prefix cache's hits; the other tiers come from the KV connector's stats.
        assert by_source[(str(engine), "device")] == sum(x.prefix_hits for x in scheds)
        for tier in ("host", "disk", "p2p", "external_unspecified"):
            assert by_source[(str(engine), tier)] == sum(x.hits_by_source.get(tier, 0) for x in scheds)


async def test_the_exporter_switches_source_as_the_plugins_series_appear_and_disappear(rendered: Rendered) -> None:
    """A pod restarted with the plugin, then without: exact quantiles while it serves them, histograms around."""
    without, with_plugin = rendered.renders["single-engine"], rendered.renders["dp2-unequal"]
    bodies = [without[0].body, without[1].body, with_plugin[-1].body, without[2].body]
    body, clock = Body(bodies[0]), ManualClock()
    sources = []
    async with exporter_over({"p": body}, clock) as exporter:
        for step, text in enumerate(bodies):
            body.text, clock.now = text, step * STEP_SECONDS
            series = await exporter.run_cycle()
            sources.append({s.labels["latency"]: s.labels["source"] for s in series
                            if s.family == "kvscale_vllm_latency_source_info"})
            if step == 2:
                served = {(s.family, s.labels["quantile"]): s.value for s in series if "quantile" in s.labels}
    assert [set(by_latency.values()) for by_latency in sources] == [{"histogram"}, {"histogram"}, {"plugin"},
                                                                    {"histogram"}]
    assert set(sources[2]) == {"ttft", "itl", "e2e", "queue"}
    plugin = rendered.scenarios["dp2-unequal"]
    assert served == pytest.approx(expected.exact(plugin, len(plugin.steps) - 1, tuple(settings().quantiles)),
                                   rel=1e-12)
