"""A simulated replica's /metrics against vLLM 0.33.0's own expositions (tests/fixtures/vllm)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from exporter.contract.exposition import parse
from exporter.vllm.reading import read
from simulator.engine import Fleet, Request, VirtualClock
from simulator.engine.profile import load

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "vllm"
Shape = dict[tuple[str, str], set[tuple[str, tuple[str, ...], str | None]]]


def shape(text: str) -> Shape:
    """vllm: families -> (sample name, label names, le) as prometheus_client parses them."""
    out: Shape = {}
    for fam in text_string_to_metric_families(text):
        if fam.name.startswith("vllm:"):
            out[(fam.name, fam.type)] = {(s.name, tuple(sorted(set(s.labels) - {"le"})), s.labels.get("le"))
                                         for s in fam.samples}
    return out


def busy_fleet(dp: int) -> Fleet:
    # The fixture's model had max_model_len 2048: the token-count buckets end at 2000 there too.
    profile = dataclasses.replace(load("llama-3.1-8b-h100"), max_model_len=2048)
    clock = VirtualClock()
    fleet = Fleet(profile, replicas=1, clock=clock, dp=dp)
    for i in range(12):
        clock.advance_to(i * 0.05)
        fleet.submit(Request(300 + 10 * i, 400))
    clock.advance_to(1.0)
    fleet.advance(1.0)
    return fleet


def test_single_engine_matches_the_fixture_families_labels_and_buckets() -> None:
    body = busy_fleet(dp=1).replicas[0].metrics_text()
    fixture = (FIXTURES / "v0.33.0-single-engine.prom").read_text(encoding="utf-8")
    assert shape(body) == shape(fixture)
    # HELP and TYPE lines are vLLM's, byte for byte.
    ours = [line for line in body.splitlines() if line.startswith("#")]
    theirs = [line for line in fixture.splitlines() if line.startswith("# ") and "vllm:" in line]
    assert ours == theirs


def test_dp_engines_get_their_own_series_and_the_summed_block_count() -> None:
    fleet = busy_fleet(dp=2)
    body = fleet.replicas[0].metrics_text()
    reading = read(parse(body))
    engines = {engine for _, engine in reading.engines}
    assert engines == {"0", "1", ""}  # "" is the frontend's admission counter, as in vLLM
    blocks = fleet.replicas[0].engines[0].pool.num_blocks
    assert {c.num_gpu_blocks_total for c in reading.cache.values()} == {2 * blocks}
    dp2 = (FIXTURES / "v0.33.0-dp2-optional-features.prom").read_text(encoding="utf-8")
    core = {k for k in shape(dp2) if "spec_decode" not in k[0] and "lora" not in k[0] and "kv_block" not in k[0]
            and "corrupted" not in k[0] and "tool_call" not in k[0]}
    assert core <= set(shape(body))
    running = {labels["engine"]: v for labels, v in parse(body).samples["vllm:num_requests_running"]}
    assert sum(running.values()) == sum(len(e.running) for e in fleet.replicas[0].engines) > 0


def test_counters_and_histograms_read_back_through_the_exporter() -> None:
    fleet = busy_fleet(dp=1)
    engine = fleet.replicas[0].engine
    reading = read(parse(fleet.replicas[0].metrics_text()))
    e = reading.engines[("llama-3.1-8b", "0")]
    assert e.gauges["running"] == len(engine.running)
    assert e.gauges["waiting"] == len(engine.waiting)
    assert e.counters["generation_tokens"] == {(): engine.stats.counters["generation_tokens"]}
    assert engine.stats.counters["generation_tokens"] > 0
    assert e.counters["prompt_tokens"] == {(): sum(300 + 10 * i for i in range(12))}  # every prefill completed
    ttft = e.histograms["ttft"].buckets
    assert ttft[-1] == (float("inf"), 12.0)
    assert e.gauges["kv_usage"] == engine.pool.usage() > 0
