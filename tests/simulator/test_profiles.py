"""Each shipped profile against the measured figures it names, within the README's tolerance (15 %)."""

from __future__ import annotations

import statistics
from importlib import resources

import pytest
import yaml

from simulator.engine.profile import Profile, ProfileError, available, from_mapping, load
from simulator.engine.request import Request
from simulator.engine.scheduler import Engine

TOLERANCE = 0.15


def closed_loop(profile: Profile, concurrency: int, prompt: int, output: int, rounds: int = 30) -> dict[str, float]:
    """vllm bench serve --max-concurrency: a new request as soon as one finishes."""
    engine = Engine(profile)
    done: list[Request] = []
    engine.on_finish = done.append
    for _ in range(concurrency):
        engine.add(Request(prompt, output, arrival=0.0))
    while len(done) < rounds * concurrency:
        before = len(done)
        engine.advance(engine.next_change() + 1e-9)
        for _ in done[before:]:
            engine.add(Request(prompt, output, arrival=engine.now))
    return {
        "output_tokens_per_s": sum(r.generated for r in done) / engine.now,
        "tpot_p50_s": statistics.median((r.last_token - r.first_token) / (r.generated - 1)  # type: ignore[operator]
                                        for r in done),
        "ttft_p50_s": statistics.median(r.first_token - r.arrival for r in done),  # type: ignore[operator]
    }


@pytest.mark.parametrize("name", available())
def test_profile_reproduces_its_measured_points(name: str) -> None:
    profile = load(name)
    measured = profile.measured
    assert measured["source"] and measured["points"]
    for point in measured["points"]:
        got = closed_loop(profile, point["concurrency"], measured["prompt_tokens"], measured["output_tokens"])
        for key, want in point.items():
            if key != "concurrency":
                assert abs(got[key] - want) <= TOLERANCE * want, (name, point["concurrency"], key, got[key], want)


def test_kv_blocks_follow_memory_weights_and_bytes_per_token() -> None:
    h100 = load("llama-3.1-8b-h100")
    free = (0.9 * 79.2 - 14.96 - 2.0) * 1024**3
    assert h100.num_gpu_blocks == int(free // (131072 * 16))
    assert h100.kv_cache_size_tokens == h100.num_gpu_blocks * 16
    assert load("llama-3.1-8b-a100").num_gpu_blocks < h100.num_gpu_blocks


@pytest.mark.parametrize(("change", "message"), [
    ({"block_size": 0}, "positive"), ({"step": None}, "step"), ({"weights_gib": 200}, "no memory left"),
    ({"gpu_memory_utilization": 1.5}, "utilization"),
])
def test_bad_profiles_are_errors_naming_the_field(change: dict[str, object], message: str) -> None:
    data = yaml.safe_load(resources.files("simulator").joinpath("profiles", "llama-3.1-8b-h100.yaml").read_text())
    data.update(change)
    with pytest.raises(ProfileError, match=message):
        from_mapping("bad", data).num_gpu_blocks  # noqa: B018


def test_unknown_profile_lists_the_shipped_ones() -> None:
    with pytest.raises(ProfileError, match=r"llama-3\.1-8b-a100"):
        load("no-such-profile")
