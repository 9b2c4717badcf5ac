"""The fleet over real HTTP: OpenAI endpoints, SSE pacing, /metrics, readiness, the router's choice."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.contract.exposition import parse
from exporter.vllm.reading import read
from simulator.engine import Fleet, FleetHandle, Request, ScaledClock, VirtualClock, serve_fleet

MODEL = "llama-3.1-8b"


@pytest.fixture
async def served() -> AsyncIterator[tuple[Fleet, FleetHandle, aiohttp.ClientSession]]:
    fleet = Fleet("llama-3.1-8b-h100", replicas=2, clock=ScaledClock(1.0), cold_start_s=3600)
    handle = await serve_fleet(fleet)
    async with aiohttp.ClientSession() as session:
        yield fleet, handle, session
    await handle.close()


async def test_streamed_completion_arrives_paced_by_the_engine(served: tuple[Fleet, FleetHandle,
                                                                          aiohttp.ClientSession]) -> None:
    _, handle, session = served
    body = {"model": MODEL, "prompt": list(range(256)), "max_tokens": 40, "stream": True,
            "stream_options": {"include_usage": True}}
    arrivals: list[float] = []
    events: list[dict[str, object]] = []
    start = time.monotonic()
    async with session.post(f"{handle.router_url}/v1/completions", json=body) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        async for raw in resp.content:
            line = raw.decode().strip()
            if line.startswith("data: ") and line != "data: [DONE]":
                arrivals.append(time.monotonic() - start)
                events.append(json.loads(line[6:]))
            elif line == "data: [DONE]":
                done = True
    assert done
    tokens = [e for e in events if e["choices"]]
    assert len(tokens) == 40
    assert tokens[-1]["choices"][0]["finish_reason"] == "length"  # type: ignore[index]
    assert events[-1]["usage"] == {"prompt_tokens": 256, "completion_tokens": 40, "total_tokens": 296}
    # 39 decode steps of ~6.5 ms each: the stream takes that long, it is not one burst.
    spread = arrivals[len(tokens) - 1] - arrivals[0]
    assert 39 * 0.0064 * 0.7 < spread < 5.0


async def test_chat_models_health_and_bad_requests(served: tuple[Fleet, FleetHandle, aiohttp.ClientSession]) -> None:
    fleet, handle, session = served
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 7}
    async with session.post(f"{handle.router_url}/v1/chat/completions", json=chat) as resp:
        out = await resp.json()
    assert out["object"] == "chat.completion"
    assert out["usage"] == {"prompt_tokens": 104, "completion_tokens": 7, "total_tokens": 111}
    async with session.get(f"{handle.router_url}/v1/models") as resp:
        assert (await resp.json())["data"][0]["id"] == MODEL
    for bad in ({"model": "other", "prompt": "x"}, {"model": MODEL, "prompt": 3}, {"prompt": "x", "max_tokens": 0}):
        async with session.post(f"{handle.router_url}/v1/completions", json=bad) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["code"] == 400
    name = fleet.replicas[0].name
    async with session.get(handle.replica_urls[name] + "/health") as resp:
        assert resp.status == 200


async def test_metrics_endpoint_serves_vllm_text_and_new_replicas_answer_503_until_ready(
        served: tuple[Fleet, FleetHandle, aiohttp.ClientSession]) -> None:
    fleet, handle, session = served
    async with session.post(f"{handle.router_url}/v1/completions",
                            json={"model": MODEL, "prompt": "hi", "max_tokens": 3}) as resp:
        assert resp.status == 200
    url = handle.metrics_urls()[fleet.replicas[0].name]
    async with session.get(url) as resp:
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = await resp.text()
    assert read(parse(text)).engines[(MODEL, "0")].gauges["running"] >= 0
    assert any(f.name == "vllm:generation_tokens" for f in text_string_to_metric_families(text))
    fleet.scale_to(3)
    await handle.sync()
    cold = fleet.replicas[-1]
    assert not cold.ready and cold.name in handle.metrics_urls()
    async with session.get(handle.metrics_urls()[cold.name]) as resp:
        assert resp.status == 503
    async with session.post(handle.replica_urls[cold.name] + "/v1/completions",
                            json={"model": MODEL, "prompt": "hi"}) as resp:
        assert resp.status == 503


def test_router_picks_the_ready_replica_with_the_fewest_outstanding_requests() -> None:
    clock = VirtualClock()
    fleet = Fleet("llama-3.1-8b-h100", replicas=3, clock=clock, cold_start_s=100.0)
    picks = [fleet.submit(Request(2000, 500)) for _ in range(6)]
    assert [p.name for p in picks if p] == ["vllm-0", "vllm-1", "vllm-2"] * 2
    fleet.replicas[1].engine.abort(fleet.replicas[1].engine.waiting[-1] if fleet.replicas[1].engine.waiting
                                   else fleet.replicas[1].engine.running[-1])
    chosen = fleet.submit(Request(10, 10))
    assert chosen is not None and chosen.name == "vllm-1"  # one fewer outstanding
    fleet.scale_to(5)  # two cold replicas: never chosen until ready
    assert all(fleet.submit(Request(10, 10)).name in {"vllm-0", "vllm-1", "vllm-2"}  # type: ignore[union-attr]
               for _ in range(5))
    clock.advance_to(100.0)
    fleet.advance(100.0)
    assert fleet.submit(Request(10, 10)).name in {"vllm-3", "vllm-4"}  # type: ignore[union-attr]


def test_scaling_down_drains_then_retires_and_gpu_time_is_paid_until_then() -> None:
    clock = VirtualClock()
    fleet = Fleet("llama-3.1-8b-h100", replicas=2, clock=clock, cold_start_s=60.0)
    fleet.submit(Request(100, 2000))
    busy = next(r for r in fleet.replicas if r.outstanding)
    fleet.scale_to(1)
    assert len(fleet.active) == 1
    gone = fleet.retired[0] if fleet.retired else busy
    clock.advance_to(100.0)
    fleet.advance(100.0)
    assert not any(r.outstanding for r in fleet.replicas) and len(fleet.replicas) == 1
    assert gone in fleet.retired
    assert fleet.gpu_seconds() == pytest.approx(100.0 + (gone.gone_at or 0.0))
