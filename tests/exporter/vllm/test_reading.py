"""Normalizing real vLLM expositions across versions (fixtures rendered by vLLM's own code)."""

from __future__ import annotations

import pytest

from exporter.contract.exposition import parse
from exporter.vllm.reading import SELECTION, ReadingError, read
from tests.conftest import VLLM_FIXTURES


def fixture(name: str) -> str:
    return (VLLM_FIXTURES / name).read_text()


def test_dp2_fixture_gives_one_reading_per_engine() -> None:
    reading = read(parse(fixture("v0.33.0-dp2-optional-features.prom")))
    # The frontend's admission counter has no engine label: it reads as engine "".
    assert sorted(reading.engines) == [("tiny-llama", ""), ("tiny-llama", "0"), ("tiny-llama", "1")]
    frontend = reading.engines[("tiny-llama", "")]
    # One value per reason: the reset rule must see each series, so they are not summed here.
    assert frontend.counters == {"admission_rejections": {(("reason", "max_num_queued_reqs"),): 1.0,
                                                          (("reason", "max_num_queued_tokens"),): 0.0}}
    assert not frontend.gauges
    e0, e1 = reading.engines[("tiny-llama", "0")], reading.engines[("tiny-llama", "1")]
    assert (e0.gauges["kv_usage"], e1.gauges["kv_usage"]) == (0.25, 0.75)
    assert e0.gauges["running"] + e1.gauges["running"] == 11
    assert set(e0.histograms) == {"ttft", "itl", "e2e", "queue"}
    assert e0.histograms["ttft"].buckets[-1] == (float("inf"), 1.0)
    # cache_config_info is read by label name: num_gpu_blocks is the DP-summed value.
    assert reading.cache["0"].num_gpu_blocks_total == 24690
    assert reading.cache["0"].kv_cache_size_tokens == 197520
    assert reading.cache["0"].kv_cache_max_concurrency == 48.22265625
    assert reading.models() == ["tiny-llama"]


def test_v0_exposition_without_engine_label_and_old_names() -> None:
    reading = read(parse(fixture("v0-era-aibrix-docs.prom")))
    [(model, engine)] = reading.engines
    assert (model, engine) == ("Qwen/Qwen2.5-Coder-1.5B-Instruct", "")
    e = reading.engines[(model, engine)]
    assert e.gauges["kv_usage"] == 0.0  # from gpu_cache_usage_perc
    assert e.counters["generation_tokens"] == {(): 955.0}
    assert reading.cache[""].num_gpu_blocks_total == 81767
    assert reading.cache[""].kv_cache_size_tokens is None
    assert reading.cache[""].kv_cache_max_concurrency is None


V10_BOTH = """# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.9
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.3
# TYPE vllm:gpu_prefix_cache_hits_total counter
vllm:gpu_prefix_cache_hits_total{engine="0",model_name="m"} 1.0
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="m"} 7.0
# TYPE vllm:time_per_output_token_seconds histogram
vllm:time_per_output_token_seconds_bucket{engine="0",le="0.1",model_name="m"} 1.0
vllm:time_per_output_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 1.0
"""


def test_new_name_wins_when_both_are_emitted_and_old_names_map() -> None:
    e = read(parse(V10_BOTH)).engines[("m", "0")]
    assert e.gauges["kv_usage"] == 0.3
    assert e.counters["prefix_hits"] == {(): 7.0}
    # Only the deprecated TPOT histogram is present: it feeds inter-token latency.
    assert e.histograms["itl"].buckets == ((0.1, 1.0), (float("inf"), 1.0))


def test_underscore_spelling_is_read_like_the_colon_one() -> None:
    text = fixture("v0.33.0-single-engine.prom")
    colon, underscore = read(parse(text)), read(parse(text.replace("vllm:", "vllm_")))
    assert underscore.engines == colon.engines
    assert underscore.cache == colon.cache


def test_selective_parse_reads_the_same_as_a_full_parse() -> None:
    text = fixture("v0.33.0-dp2-optional-features.prom")
    assert read(parse(text, only=SELECTION)) == read(parse(text))


@pytest.mark.parametrize(("text", "message"), [
    ("# TYPE vllm:kv_cache_usage_perc counter\nvllm:kv_cache_usage_perc_total 1\n"
     "vllm:kv_cache_usage_perc 0.5\n", "declared as counter"),
    ("vllm:kv_cache_usage_perc{engine=\"0\"} NaN\n", "invalid value"),
    ("vllm:num_requests_waiting{engine=\"0\"} +Inf\n", "invalid value"),
    ("vllm:prompt_tokens_total{engine=\"0\"} -3\n", "invalid value"),
    ("vllm:time_to_first_token_seconds_bucket{le=\"0.1\"} 1\n", r"\+Inf"),
    ("vllm:time_to_first_token_seconds_bucket{le=\"abc\"} 1\n", "bad le"),
    ("vllm:time_to_first_token_seconds_bucket{engine=\"0\"} 1\n", "without le"),
    ("vllm:time_to_first_token_seconds_bucket{le=\"+Inf\"} NaN\n", "invalid bucket"),
])
def test_bad_values_and_wrong_types_are_reading_errors(text: str, message: str) -> None:
    with pytest.raises(ReadingError, match=message):
        read(parse(text))


def test_cache_config_fields_with_unexpected_spelling_drop_only_that_field() -> None:
    text = 'vllm:cache_config_info{block_size="sixteen",engine="0",num_gpu_blocks="100",new_field="x"} 1\n'
    cache = read(parse(text)).cache["0"]
    assert (cache.block_size, cache.num_gpu_blocks_total, cache.kv_cache_size_tokens) == (None, 100, None)


@pytest.mark.parametrize(("name", "blocks", "tokens", "concurrency"), [
    # Rendered by vLLM 0.33.0's own handshake: num_gpu_blocks is 12345 + 11800 (summed over
    # engines), the tokens and concurrency are the first ready engine's (12345 blocks).
    ("v0.33.0-dp2-unequal-blocks.prom", 24145, 12345 * 16, 12345 / 256),
    # max_model_len 4001: ceil(4001/16) = 251 blocks per request, 12345 * 4001 // 251 tokens.
    ("v0.33.0-single-engine-len-4001.prom", 12345, 12345 * 4001 // 251, 12345 / 251),
    # Full attention + 512-token sliding window: 256 + 161 blocks per request of 4096 tokens.
    ("v0.33.0-hybrid-swa.prom", 24690, int(24690 / 417 * 4096), 24690 / 417),
])
def test_cache_config_of_genuine_renders(name: str, blocks: int, tokens: int, concurrency: float) -> None:
    reading = read(parse(fixture(name)))
    for cache in reading.cache.values():
        assert (cache.block_size, cache.num_gpu_blocks_total, cache.kv_cache_size_tokens) == (16, blocks, tokens)
        assert cache.kv_cache_max_concurrency == pytest.approx(concurrency, rel=1e-15)


def test_a_restart_shows_in_one_reason_of_the_admission_counter() -> None:
    by_step = [read(parse(fixture(f"v0.33.0-admission-{step}.prom"))).engines[("tiny-llama", "")]
               for step in ("t0", "t1", "t2-restarted")]
    reqs, tokens = (("reason", "max_num_queued_reqs"),), (("reason", "max_num_queued_tokens"),)
    series = [e.counters["admission_rejections"] for e in by_step]
    assert [s[reqs] for s in series] == [4.0, 6.0, 1.0]
    assert [s[tokens] for s in series] == [0.0, 0.0, 7.0]
