"""PromQL spelling helpers (pure, table-driven)."""

from __future__ import annotations

import pytest

from alerts.promql import duration, kvscale, matchers, number, vllm


@pytest.mark.parametrize(("seconds", "expected"), [
    (0, "0s"), (1, "1s"), (59, "59s"), (60, "1m"), (90, "90s"), (300, "5m"), (600, "10m"),
    (3600, "1h"), (5400, "90m"), (86400, "1d"), (90000, "25h"),
])
def test_duration(seconds: int, expected: str) -> None:
    assert duration(seconds) == expected


@pytest.mark.parametrize("bad", [-1, 1.5])
def test_duration_rejects_what_prometheus_cannot_say(bad: float) -> None:
    with pytest.raises(ValueError, match="whole non-negative seconds"):
        duration(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "expected"), [
    (5.0, "5"), (5, "5"), (0.85, "0.85"), (0.2, "0.2"), (0.1, "0.1"), (1e-3, "0.001"), (1234.5, "1234.5"),
])
def test_number(value: float, expected: str) -> None:
    assert number(value) == expected


@pytest.mark.parametrize(("parts", "expected"), [
    (('job="a"', 'pod="b"'), 'job="a", pod="b"'),
    (("", 'pod="b"'), 'pod="b"'),
    (("  ", ""), ""),
    ((' job="a" ',), 'job="a"'),
])
def test_matchers_skip_empty_settings(parts: tuple[str, ...], expected: str) -> None:
    assert matchers(*parts) == expected


@pytest.mark.parametrize(("parts", "expected"), [
    ((), "kvscale_vllm_up"),
    (("",), "kvscale_vllm_up"),
    (('job="e"',), 'kvscale_vllm_up{job="e"}'),
])
def test_kvscale_selector(parts: tuple[str, ...], expected: str) -> None:
    assert kvscale("kvscale_vllm_up", *parts) == expected


def test_kvscale_selector_rejects_names_outside_the_catalog() -> None:
    with pytest.raises(KeyError, match="not in the kvscale metric catalog"):
        kvscale("kvscale_vllm_kv_cache_usage_perc")


@pytest.mark.parametrize(("parts", "expected"), [
    ((), '{__name__=~"vllm[:_]num_requests_waiting"}'),
    (('job="vllm"',), '{__name__=~"vllm[:_]num_requests_waiting", job="vllm"}'),
])
def test_vllm_selector_accepts_both_prefix_spellings(parts: tuple[str, ...], expected: str) -> None:
    assert vllm("num_requests_waiting", *parts) == expected


@pytest.mark.parametrize("bad", ["vllm:num_requests_waiting", "Num", "a-b", ""])
def test_vllm_selector_wants_the_bare_name(bad: str) -> None:
    with pytest.raises(ValueError, match="bare vLLM metric name"):
        vllm(bad)
