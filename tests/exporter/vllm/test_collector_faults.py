"""One target's bad numbers or slow read cost that target only (issue 11, defects 2 and 3).

Each test runs the real collection cycle over loopback targets: a hostile one beside a
healthy one. The hostile target becomes ``up 0`` with a counted reason; the healthy one
is published in the same cycle; the exporter process keeps running.
"""

from __future__ import annotations

import asyncio
import re
import threading
from concurrent.futures import ThreadPoolExecutor

from aiohttp.test_utils import TestClient, TestServer

from exporter.collector import Series
from exporter.vllm.reading import PodReading
from exporter.vllm.scrape import decode
from tests.exporter.helpers import DP2, SINGLE, Body, ManualClock, by_pod, errors, exporter_over

TTFT_BUCKET = re.compile(r"^(vllm:time_to_first_token_seconds_bucket\{[^}]*\}) \S+$", re.M)


async def test_a_kv_capacity_of_1e308_on_two_engines_is_that_targets_error() -> None:
    bad = Body(DP2.read_text().replace('kv_cache_size_tokens="197520"', 'kv_cache_size_tokens="1e308"'))
    clock = ManualClock(100.0)
    async with exporter_over({"bad": bad, "ok": Body(DP2.read_text())}, clock) as exp:
        series = await exp.run_cycle()
        clock.now += 1
        series = await exp.run_cycle()
    assert by_pod(series, "kvscale_vllm_up") == {"bad": 0.0, "ok": 1.0}
    assert errors(series)[("bad", "derive")] == 2
    assert errors(series)[("ok", "derive")] == 0
    assert "bad" not in by_pod(series, "kvscale_vllm_kv_cache_capacity_tokens")
    assert by_pod(series, "kvscale_vllm_kv_cache_capacity_tokens")["ok"] > 0


def _ttft_buckets(text: str, value: str) -> str:
    return TTFT_BUCKET.sub(lambda m: f"{m.group(1)} {value}", text)


async def test_an_inf_bucket_of_5e_324_gives_no_median_and_no_crash() -> None:
    zero = _ttft_buckets(SINGLE.read_text(), "0.0")
    body = Body(zero)
    clock = ManualClock(100.0)
    async with exporter_over({"tiny": body, "ok": Body(SINGLE.read_text())}, clock) as exp:
        await exp.run_cycle()
        body.text = re.sub(r'(le="\+Inf"[^}]*\}) 0\.0', r"\1 5e-324", zero)
        assert body.text != zero
        clock.now += 1
        series = await exp.run_cycle()
    assert by_pod(series, "kvscale_vllm_up") == {"tiny": 1.0, "ok": 1.0}
    ttft = by_pod(series, "kvscale_vllm_ttft_seconds")
    # As PromQL: the rank 0.5 * 5e-324 rounds to 0 inside an empty first bucket, 0/0 is NaN: no series.
    assert "tiny/0.5" not in ttft
    assert ttft["tiny/0.99"] == 2560.0  # the rank falls in +Inf: the highest finite bound
    assert errors(series)[("tiny", "derive")] == 0


async def test_a_cycle_that_raises_does_not_end_the_collection_loop() -> None:
    class Broken:
        name = "broken"

        async def collect(self, ctx: object) -> list[Series]:
            return [Series("kvscale_not_a_family", {}, 1.0)]  # rejected when the snapshot is rendered

        async def close(self) -> None:
            pass

    clock = ManualClock(100.0)
    async with exporter_over({"ok": Body(SINGLE.read_text())}, clock, interval=0.05, scrape_timeout=0.04,
                             window=1.0) as exp:
        exp.others = (Broken(),)
        loop = asyncio.create_task(exp.run_forever())
        await asyncio.sleep(0.3)
        try:
            assert not loop.done()
            assert exp.failed_cycles >= 2
        finally:
            loop.cancel()


async def test_a_read_that_overruns_the_deadline_is_that_targets_timeout_and_the_others_publish() -> None:
    stall, calls = threading.Event(), []

    def stalling_decode(body: bytes) -> PodReading:
        if b"# stall" in body:
            calls.append(1)
            stall.wait(30)  # a 14 MB body of 250k series: longer than the collector's deadline
        return decode(body)

    slow = Body(SINGLE.read_text())
    clock = ManualClock(100.0)
    with ThreadPoolExecutor(2) as cpu:
        async with exporter_over({"slow": slow, "ok": Body(SINGLE.read_text())}, clock, cpu=cpu,
                                 decoder=stalling_decode) as exp, TestClient(TestServer(exp.app())) as client:
            try:
                await exp.run_cycle()  # both read once: the slow one has values to freeze
                slow.text += "# stall\n"
                for _ in range(2):
                    clock.now += 1
                    series = await exp.run_cycle()
                    assert not stall.is_set()  # the cycle did not wait for the stalled read
                    assert by_pod(series, "kvscale_vllm_up") == {"slow": 0.0, "ok": 1.0}
                    assert [s for s in series if s.labels.get("pod") == "slow" and s.family.startswith(
                        "kvscale_vllm_") and s.family != "kvscale_vllm_up"] == []  # nothing frozen
                    assert "ok" in by_pod(series, "kvscale_vllm_requests_waiting")
                    assert (await client.get("/healthz")).status == 200
                assert errors(series)[("slow", "timeout")] == 2
                assert len(calls) == 1  # a target whose read still runs is not read again on top of it
                success = {s.labels["collector"]: s.value for s in series
                           if s.family == "kvscale_exporter_collector_success"}
                assert success == {"vllm": 1.0}
            finally:
                stall.set()
            slow.text = SINGLE.read_text()
            for _ in range(50):  # the stalled read ends; the next cycle reads the target again
                clock.now += 1
                series = await exp.run_cycle()
                if by_pod(series, "kvscale_vllm_up")["slow"] == 1.0:
                    break
                await asyncio.sleep(0.02)
            assert by_pod(series, "kvscale_vllm_up") == {"slow": 1.0, "ok": 1.0}
