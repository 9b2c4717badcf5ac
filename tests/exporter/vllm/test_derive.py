"""Pure derivations: folding engines, fragmentation estimate, saturation, cost, hit ratio."""

from __future__ import annotations

import pytest

from exporter.contract.exposition import parse
from exporter.vllm import derive
from exporter.vllm.derive import EngineState
from exporter.vllm.reading import read
from tests.conftest import VLLM_FIXTURES


def engine(*, running: float | None = 5, waiting: float | None = 2, kv: float | None = 0.25,
           blocks: float | None = 12345, block: int | None = 16, tokens: float | None = 197520,
           tracks: bool | None = True) -> EngineState:
    return EngineState(running=running, waiting=waiting, kv_usage=kv, gpu_blocks=blocks, block_size=block,
                       capacity_tokens=tokens, tracks_tokens=tracks)


@pytest.mark.parametrize(("states", "want"), [
    # R(B-1)/2 over u(N-1)B, per DESIGN.md.
    ([engine()], 5 * 15 / 2 / (0.25 * 12344 * 16)),
    # Folded: total waste over total used slots, not a mean of ratios.
    ([engine(running=5, kv=0.25), engine(running=6, kv=0.75)],
     (5 + 6) * 15 / 2 / ((0.25 + 0.75) * 12344 * 16)),
    ([engine(running=0, kv=0.5)], 0.0),
    # Unknowable: no usage, no geometry, a hybrid KV cache, or one that cannot be told apart.
    ([engine(kv=0.0)], None),
    ([engine(running=None)], None),
    ([engine(blocks=None)], None),
    ([engine(tracks=False)], None),
    ([engine(), engine(tracks=None)], None),
    ([], None),
    # Capped at 1 when the inputs disagree (many requests, almost no usage).
    ([engine(running=10_000, kv=0.0001, blocks=100, tokens=1600)], 1.0),
])
def test_fragmentation(states: list[EngineState], want: float | None) -> None:
    got = derive.fragmentation(states)
    assert got == (None if want is None else pytest.approx(want))


def test_fold_sums_counts_and_weights_usage_by_blocks() -> None:
    states = [engine(running=5, waiting=2, kv=0.2, blocks=100, tokens=1600),
              engine(running=6, waiting=3, kv=0.8, blocks=300, tokens=4800)]
    pod = derive.fold(states)
    assert pod.running == 11 and pod.waiting == 5
    assert pod.kv_usage == pytest.approx((0.2 * 100 + 0.8 * 300) / 400)
    assert pod.capacity_tokens == 6400


def test_fold_without_geometry_averages_usage_and_has_no_capacity() -> None:
    pod = derive.fold([engine(kv=0.2, blocks=None, tokens=None), engine(kv=0.6, blocks=None, tokens=None)])
    assert pod.kv_usage == pytest.approx(0.4)
    assert pod.capacity_tokens is None


@pytest.mark.parametrize(("kv", "waiting", "ttft", "want"), [
    (0.75, 5.0, 0.8, 1.0),
    (0.375, 10.0, None, 2.0),
    (None, None, 1.6, 2.0),
    (0.9, 0.0, 0.4, 1.2),
    (None, None, None, None),
])
def test_saturation_is_the_worst_available_term(kv: float | None, waiting: float | None, ttft: float | None,
                                                want: float | None) -> None:
    got = derive.saturation(kv_usage=kv, waiting=waiting, ttft_p95=ttft, kv_target=0.75, queue_target=5,
                            ttft_slo=0.8)
    assert got == (None if want is None else pytest.approx(want))


@pytest.mark.parametrize(("price", "gpus", "tps", "want"), [
    (2.5, 1, 1000.0, 2.5 / 3.6e6 * 1e6),
    (2.5, 8, 1000.0, 8 * 2.5 / 3.6e6 * 1e6),
    (3.0, 0.5, 100.0, 1.5 / 3.6e5 * 1e6),
    (None, 1, 1000.0, None),
    (2.5, 1, 0.0, None),
    (2.5, 1, None, None),
])
def test_cost_per_million_tokens(price: float | None, gpus: float, tps: float | None, want: float | None) -> None:
    got = derive.cost_per_million_tokens(price_per_gpu_hour=price, gpus=gpus, tokens_per_second=tps)
    assert got == (None if want is None else pytest.approx(want))


@pytest.mark.parametrize(("hits", "queries", "want"), [
    (32.0, 100.0, 0.32), (0.0, 50.0, 0.0), (5.0, 0.0, None), (None, 10.0, None),
])
def test_hit_ratio(hits: float | None, queries: float | None, want: float | None) -> None:
    assert derive.hit_ratio(hits, queries) == want


@pytest.mark.parametrize(("name", "fragmentation", "capacity"), [
    # DP=2, engines of 12345 and 11800 blocks: N/D = 24145/2 per engine; waste (5+6)*15/2
    # over used (0.25+0.75)*(N/D-1)*16. Capacity: the first engine's 197520 tokens * N/N1.
    ("v0.33.0-dp2-unequal-blocks.prom", (5 + 6) * 15 / 2 / ((0.25 + 0.75) * (24145 / 2 - 1) * 16), 24145 * 16),
    # One engine, max_model_len 4001: 7 running at usage 0.4321 of 12345 blocks.
    ("v0.33.0-single-engine-len-4001.prom", 7 * 15 / 2 / (0.4321 * 12344 * 16), 12345 * 4001 // 251),
    # DP=2 with equal engines (the fixture the golden /metrics is made from): unchanged.
    ("v0.33.0-dp2-optional-features.prom", (5 + 6) * 15 / 2 / ((0.25 + 0.75) * 12344 * 16), 2 * 197520),
    # Hybrid (full + sliding window): no estimate; capacity is vLLM's own, per engine.
    ("v0.33.0-hybrid-swa.prom", None, 242518),
    ("v0.33.0-hybrid-swa-dp2-unequal-blocks.prom", None, 2 * 231811),
])
def test_genuine_renders_fold_to_fragmentation_only_where_blocks_track_tokens(
        name: str, fragmentation: float | None, capacity: float) -> None:
    reading = read(parse((VLLM_FIXTURES / name).read_text()))
    pod = derive.fold(derive.engine_states(reading, "tiny-llama"))
    assert pod.fragmentation == (None if fragmentation is None else pytest.approx(fragmentation))
    assert pod.capacity_tokens == pytest.approx(capacity)
