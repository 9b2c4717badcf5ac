"""Every served family's declared aggregation and window, through the adapter's wire output.

The table below is written by hand from what each family means (counts and rates add up
over a Deployment's pods; the worst pod's latency and saturation govern; per-pod ratios
average), independently of the catalog's declarations: a family declared wrongly in the
catalog, or an adapter that ignores the declaration, fails here.
"""

from __future__ import annotations

from typing import Any

import pytest

from exporter.contract import catalog
from tests.adapter.helpers import CUSTOM, direct_adapter

# Three Running pods of Deployment llm/vllm (tests/fixtures/adapter/pods.yaml) report 4, 8 and 0.
PODS = {"vllm-7d9c6-abcde": 4.0, "vllm-7d9c6-fghij": 8.0, "vllm-7d9c6-loading": 0.0}
SUM, MAX, MEAN = "12", "8", "4"

# family -> (Object value over the Deployment, whether windowSeconds is served)
EXPECTED: dict[str, tuple[str, bool]] = {
    "kvscale_vllm_requests_running": (SUM, False),
    "kvscale_vllm_requests_waiting": (SUM, False),
    "kvscale_vllm_kv_cache_usage_ratio": (MEAN, False),
    "kvscale_vllm_kv_cache_capacity_tokens": (SUM, False),
    "kvscale_vllm_kv_cache_fragmentation_ratio": (MEAN, False),
    "kvscale_vllm_ttft_seconds": (MAX, True),
    "kvscale_vllm_inter_token_latency_seconds": (MAX, True),
    "kvscale_vllm_e2e_latency_seconds": (MAX, True),
    "kvscale_vllm_queue_time_seconds": (MAX, True),
    "kvscale_vllm_prompt_tokens_per_second": (SUM, True),
    "kvscale_vllm_generation_tokens_per_second": (SUM, True),
    "kvscale_vllm_preemptions_per_second": (SUM, True),
    "kvscale_vllm_admission_rejections_per_second": (SUM, True),
    "kvscale_vllm_prefix_cache_hit_ratio": (MEAN, True),
    "kvscale_vllm_cost_per_million_tokens_dollars": (MEAN, True),
    "kvscale_vllm_saturation_ratio": (MAX, False),
}
WINDOW = 60  # the harness's exporter window (DirectSettings default)


def exposition() -> bytes:
    """An exporter's /metrics with every served family at 4, 8 and 0 on the three pods."""
    lines: list[str] = []
    for pod in PODS:
        lines.append(f'kvscale_vllm_up{{namespace="llm",pod="{pod}",model_name="m"}} 1')
    for fam in catalog.autoscaling():
        lines.append(f"# TYPE {fam.name} gauge")
        quantile = ',quantile="0.95"' if fam.quantiled else ""
        for pod, value in PODS.items():
            lines.append(f'{fam.name}{{namespace="llm",pod="{pod}",model_name="m"{quantile}}} {value:g}')
    return ("\n".join(lines) + "\n").encode()


def test_the_table_covers_every_served_family() -> None:
    assert set(EXPECTED) == {f.name for f in catalog.autoscaling()}


def _window(item: dict[str, Any], version: str) -> Any:
    return item.get("windowSeconds" if version == "v1beta2" else "window")


async def items(path: str) -> list[dict[str, Any]]:
    """The items the adapter answers at ``path`` while its exporter serves :func:`exposition`."""
    async with direct_adapter() as h:
        h.exporter.body = exposition()
        await h.provider.refresh_once()
        resp = await h.client.get(CUSTOM + path)
        assert resp.status == 200, await resp.text()
        found: list[dict[str, Any]] = (await resp.json())["items"]
        return found


@pytest.mark.parametrize("version", ["v1beta1", "v1beta2"])
@pytest.mark.parametrize("metric", sorted(EXPECTED))
async def test_object_metric_aggregates_and_windows_as_declared(metric: str, version: str) -> None:
    value, windowed = EXPECTED[metric]
    (item,) = await items(f"/{version}/namespaces/llm/deployments.apps/vllm/{metric}")
    assert item["value"] == value
    assert _window(item, version) == (WINDOW if windowed else None)


@pytest.mark.parametrize("version", ["v1beta1", "v1beta2"])
@pytest.mark.parametrize("metric", sorted(EXPECTED))
async def test_pods_metric_serves_each_pod_with_the_declared_window(metric: str, version: str) -> None:
    _, windowed = EXPECTED[metric]
    pods = await items(f"/{version}/namespaces/llm/pods/*/{metric}?labelSelector=app%3Dvllm")
    assert {i["describedObject"]["name"]: i["value"] for i in pods} == {p: f"{v:g}" for p, v in PODS.items()}
    assert {_window(i, version) for i in pods} == {WINDOW if windowed else None}
