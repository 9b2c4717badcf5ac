from __future__ import annotations

import pytest

from adapter.service import aggregate


@pytest.mark.parametrize(("metric", "quantiled", "values", "expected"), [
    ("kvscale_vllm_requests_waiting", False, [5, 7], 12),
    ("kvscale_vllm_generation_tokens_per_second", False, [0.5, 0.25], 0.75),
    ("kvscale_vllm_kv_cache_usage_ratio", False, [0.5, 1.0], 0.75),
    ("kvscale_vllm_ttft_seconds", True, [0.2, 0.9, 0.4], 0.9),
    ("kvscale_vllm_saturation_ratio", False, [0.8, 1.2], 1.2),
    ("kvscale_vllm_cost_per_million_tokens_dollars", False, [2.0, 4.0], 3.0),
])
def test_aggregate(metric: str, quantiled: bool, values: list[float], expected: float) -> None:
    assert aggregate(metric, quantiled, values) == pytest.approx(expected)
