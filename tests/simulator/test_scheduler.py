"""The engine model: conservation, KV capacity, preemption, chunked prefill, prefix caching, jumps."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.engine.profile import load
from simulator.engine.request import Request
from simulator.engine.scheduler import Engine

H100 = load("llama-3.1-8b-h100")
Arrivals = list[tuple[float, int, int]]


def run(engine: Engine, arrivals: Arrivals, until: float, *, check_every_step: bool = False) -> list[Request]:
    done: list[Request] = []
    engine.on_finish = done.append
    for at, prompt, output in sorted(arrivals):
        engine.advance(at)
        engine.add(Request(prompt, output, arrival=at))
        if check_every_step:
            engine.pool.check()
            assert engine.pool.used() <= engine.pool.usable
    engine.advance(until)
    return done


arrivals_strategy = st.lists(st.tuples(st.floats(0, 5), st.integers(1, 900), st.integers(1, 300)),
                             min_size=1, max_size=40)


@settings(max_examples=40, deadline=None)
@given(arrivals=arrivals_strategy, blocks=st.integers(60, 400), caching=st.booleans())
def test_every_admitted_request_finishes_or_is_aborted_and_blocks_balance(
        arrivals: Arrivals, blocks: int, caching: bool) -> None:
    engine = Engine(H100, num_gpu_blocks=blocks, prefix_caching=caching)
    done = run(engine, arrivals, until=10_000.0, check_every_step=True)
    assert engine.conserved()
    assert len(done) == len(arrivals) == engine.admitted
    assert not engine.running and not engine.waiting
    assert engine.pool.used() == 0  # everything given back (cached blocks are evictable, not used)
    capacity = (blocks - 1) * engine.pool.block_size
    for r in done:
        if r.prompt_tokens + r.output_tokens - 1 > capacity:
            assert r.finished_at is not None
            continue  # its last decode step needs more KV slots than the cache has: aborted
        assert r.generated == r.output_tokens, r
    finished = engine.stats.finished
    assert sum(finished.values()) == len(done)
    assert engine.stats.counters["generation_tokens"] == sum(r.generated for r in done)


def test_preemption_by_recompute_when_blocks_run_out() -> None:
    # 40 usable blocks of 16 tokens: four requests growing to 300 tokens cannot all stay.
    engine = Engine(H100, num_gpu_blocks=41)
    done = run(engine, [(0.0, 100, 200)] * 4, until=100.0)
    assert engine.stats.counters["num_preemptions"] > 0
    assert sum(r.preemptions for r in done) == engine.stats.counters["num_preemptions"]
    assert all(r.generated == 200 for r in done)
    hist = engine.stats.histograms["request_num_preemptions"]
    assert hist.n == 4 and hist.total == engine.stats.counters["num_preemptions"]
    assert engine.conserved()


def test_decode_is_scheduled_before_new_prefill_and_prefill_is_chunked() -> None:
    engine = Engine(H100)
    engine.add(Request(100, 50, arrival=0.0))
    engine.advance(0.05)  # the first request is decoding now
    decoding = engine.running[0]
    generated = decoding.generated
    big = Request(20_000, 5, arrival=engine.now)
    engine.add(big)
    engine.advance(engine.now + 1e-9)  # one step
    assert decoding.generated == generated + 1  # decode went first, within the same budget
    assert big.num_computed == H100.max_num_batched_tokens - 1  # the rest of the budget: a chunk
    assert big.first_token is None


def test_prefix_caching_reuses_a_shared_system_prompt() -> None:
    engine = Engine(H100, prefix_caching=True)
    first = Request(1000, 10, arrival=0.0, prefix_group="sys", prefix_tokens=800)
    run(engine, [], until=0.0)
    engine.add(first)
    engine.advance(1.0)
    second = Request(1000, 10, arrival=1.0, prefix_group="sys", prefix_tokens=800)
    engine.add(second)
    engine.advance(2.0)
    assert second.cached_tokens == 800  # 50 full blocks of the shared prefix
    assert engine.stats.counters["prefix_cache_hits"] == 800
    assert engine.stats.counters["prefix_cache_queries"] == 2000
    assert second.first_token is not None and first.first_token is not None
    assert second.first_token - second.arrival < first.first_token - first.arrival


def test_jumps_record_what_step_by_step_records(monkeypatch: pytest.MonkeyPatch) -> None:
    arrivals = [(0.1 * i, 200 + 37 * i, 80 + 11 * i) for i in range(20)]
    fast = Engine(H100)
    run(fast, arrivals, until=100.0)
    slow = Engine(H100)
    monkeypatch.setattr(slow, "_steady", lambda: False)
    run(slow, arrivals, until=100.0)
    assert slow.stats.counters["steps"] == fast.stats.counters["steps"]
    for name in ("inter_token_latency_seconds", "time_to_first_token_seconds", "e2e_request_latency_seconds",
                 "iteration_tokens_total"):
        a, b = fast.stats.histograms[name], slow.stats.histograms[name]
        assert a.counts == b.counts, name
        assert math.isclose(a.total, b.total, rel_tol=1e-9), name
    assert math.isclose(fast.stats.busy_seconds, slow.stats.busy_seconds, rel_tol=1e-9)


def test_a_request_larger_than_the_cache_is_aborted_not_stuck() -> None:
    engine = Engine(H100, num_gpu_blocks=10)
    done = run(engine, [(0.0, 500, 10)], until=10.0)
    assert [r.finished_at for r in done] == [0.0]
    assert engine.stats.finished["abort"] == 1
    assert engine.conserved()
