"""Panels take their unit and legend from the catalog family they show."""

from __future__ import annotations

import pytest

from dashboards import common as c
from exporter.contract import catalog


@pytest.mark.parametrize("fam", catalog.FAMILIES, ids=lambda f: f.name)
def test_every_family_has_a_grafana_unit(fam: catalog.Family) -> None:
    assert c.unit(fam)


@pytest.mark.parametrize(("name", "unit", "legend"), [
    ("kvscale_vllm_kv_cache_usage_ratio", "percentunit", "{{pod}}"),
    ("kvscale_vllm_ttft_seconds", "s", "{{pod}}"),
    ("kvscale_vllm_admission_rejections_per_second", "reqps", "{{pod}}"),
    ("kvscale_vllm_cost_per_million_tokens_dollars", "currencyUSD", "{{pod}}"),
    ("kvscale_vllm_requests_waiting", "short", "{{pod}}"),
    ("kvscale_gpu_memory_used_bytes", "bytes", "{{node}} gpu{{gpu}}"),
    ("kvscale_gpu_power_watts", "watt", "{{node}} gpu{{gpu}}"),
])
def test_unit_and_legend_follow_the_family(name: str, unit: str, legend: str) -> None:
    fam = catalog.family(name)
    assert (c.unit(fam), c.legend(fam)) == (unit, legend)


def test_a_unit_grafana_cannot_show_fails_the_build() -> None:
    odd = catalog.Family("kvscale_vllm_x", "gauge", "furlongs", "x", catalog.VLLM_LABELS, "vllm",
                         aggregation=None, windowed=False, autoscaling=False, source=())
    with pytest.raises(KeyError, match="furlongs"):
        c.unit(odd)
