"""Every way a target can fail becomes a typed ScrapeError with a fixed reason."""

from __future__ import annotations

import aiohttp
import pytest

from exporter.vllm.scrape import REASONS, ScrapeError, decode, fetch
from tests.conftest import free_port
from tests.exporter.helpers import DP2, serve_app, text_app, vllm_target


async def scrape(url: str, *, timeout: float = 1.0, max_bytes: int = 1 << 20) -> None:
    async with aiohttp.ClientSession() as session:
        decode(await fetch(session, url, timeout=timeout, max_bytes=max_bytes))


@pytest.mark.parametrize(("fault", "reason"), [
    ("http_500", "http_status"),
    ("garbage", "parse"),
    ("truncated", "parse"),
    ("huge", "body_too_large"),
    ("slow", "timeout"),
])
async def test_target_faults(fault: str, reason: str) -> None:
    async with vllm_target(DP2) as (url, state):
        await scrape(url)  # healthy first
        state.fault, state.slow_seconds = fault, 3.0
        with pytest.raises(ScrapeError) as err:
            await scrape(url, timeout=0.3)
        assert err.value.reason == reason


async def test_refused_connection() -> None:
    with pytest.raises(ScrapeError) as err:
        await scrape(f"http://127.0.0.1:{free_port()}/metrics")
    assert err.value.reason == "connect"


@pytest.mark.parametrize(("body", "reason"), [
    (b"vllm:num_requests_running 1\nvllm:num_requests_running 2\n", "parse"),  # duplicate series
    (b"vllm:kv_cache_usage_perc NaN\n", "invalid"),
    (b"vllm:num_requests_waiting -Inf\n", "invalid"),
    (b"# TYPE vllm:kv_cache_usage_perc histogram\nvllm:kv_cache_usage_perc 1\n", "invalid"),
    (b"process_open_fds 9\n", "invalid"),  # not a vLLM exposition
    (b"", "invalid"),
])
async def test_bad_bodies(body: bytes, reason: str) -> None:
    async with serve_app(text_app(body)) as url:
        with pytest.raises(ScrapeError) as err:
            await scrape(url + "/metrics")
    assert err.value.reason == reason


async def test_announced_length_over_the_cap_is_refused_before_reading() -> None:
    async with serve_app(text_app(b"# " + b"x" * 5000 + b"\n")) as url:
        with pytest.raises(ScrapeError, match="announced") as err:
            await scrape(url + "/metrics", max_bytes=1024)
    assert err.value.reason == "body_too_large"


def test_reasons_are_a_closed_set() -> None:
    with pytest.raises(AssertionError):
        ScrapeError("other", "x")
    assert len(set(REASONS)) == len(REASONS)


@pytest.mark.parametrize("value", ["+Inf", "inf", "1e999", "Infinity", "-5", "NaN"])
def test_absurd_cache_config_fields_drop_only_that_field(value: str) -> None:
    body = (f'vllm:cache_config_info{{block_size="{value}",engine="0",num_gpu_blocks="{value}"}} 1.0\n'
            'vllm:num_requests_running{engine="0",model_name="m"} 1.0\n').encode()
    reading = decode(body)
    assert reading.cache["0"].block_size is None and reading.cache["0"].num_gpu_blocks_total is None
