"""The HTTP API over the direct provider and a fake exporter: routes, selectors, errors, never-invent."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapter.authz import Attributes
from adapter.server import ResponseCache, Security
from tests.adapter.helpers import CUSTOM, FIXTURES, direct_adapter

GOLDEN = FIXTURES / "golden"


def normalized(body: dict[str, Any]) -> dict[str, Any]:
    for item in body.get("items", []):
        item["timestamp"] = "<timestamp>"
    return body


async def get(path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    async with direct_adapter(**kwargs) as h:
        resp = await h.client.get(path)
        assert resp.content_type == "application/json"
        return resp.status, await resp.json()


@pytest.mark.parametrize(("name", "path"), [
    ("pods-v1beta2", "/v1beta2/namespaces/llm/pods/%2A/kvscale_vllm_requests_waiting?labelSelector=app%3Dvllm"),
    ("pods-v1beta1", "/v1beta1/namespaces/llm/pods/*/kvscale_vllm_ttft_seconds?metricLabelSelector=quantile%3D0.99"),
    ("pod-single", "/v1beta2/namespaces/llm/pods/vllm-7d9c6-abcde/kvscale_vllm_kv_cache_usage_ratio"),
    ("deployment", "/v1beta2/namespaces/llm/deployments.apps/vllm/kvscale_vllm_requests_waiting"),
    ("statefulset", "/v1beta1/namespaces/llm/statefulsets.apps/vllm-sts/kvscale_vllm_kv_cache_usage_ratio"),
    ("namespace", "/v1beta2/namespaces/llm/metrics/kvscale_vllm_kv_cache_usage_ratio"),
    ("discovery-v1beta1", "/v1beta1"),
])
async def test_golden_responses(name: str, path: str) -> None:
    status, body = await get(CUSTOM + path)
    assert status == 200, body
    assert normalized(body) == json.loads((GOLDEN / f"{name}.json").read_text())


@pytest.mark.parametrize(("path", "code", "reason", "message"), [
    ("/v1beta2/namespaces/llm/pods/*/nope", 404, "NotFound", "could not find the metric nope for pods"),
    ("/v1beta2/namespaces/llm/pods/*/kvscale_vllm_requests_waiting?labelSelector=app%20in%20(", 400, "BadRequest",
     "invalid labelSelector"),
    ("/v1beta2/namespaces/llm/pods/*/kvscale_vllm_requests_waiting?metricLabelSelector=a%3D%3D%3D", 400,
     "BadRequest", "invalid metricLabelSelector"),
    ("/v1beta2/namespaces/llm/pods/*/kvscale_vllm_ttft_seconds?metricLabelSelector=quantile", 400, "BadRequest",
     "narrow it"),
    # Loading pod (kvscale_vllm_up 0) and pending pod without data: left out, so nothing is left: 404, not 0.
    ("/v1beta2/namespaces/llm/pods/vllm-7d9c6-loading/kvscale_vllm_requests_waiting", 404, "NotFound",
     "for pods vllm-7d9c6-loading"),
    ("/v1beta2/namespaces/llm/pods/*/kvscale_vllm_requests_waiting?labelSelector=app%3Dnone", 404, "NotFound",
     "with selector app=none"),
    ("/v1beta2/namespaces/llm/pods/vllm-7d9c6-gone/kvscale_vllm_requests_waiting", 404, "NotFound", "not found"),
    ("/v1beta2/namespaces/llm/deployments.apps/absent/kvscale_vllm_requests_waiting", 404, "NotFound",
     "deployments.apps absent"),
    ("/v1beta2/namespaces/llm/services/x/kvscale_vllm_requests_waiting", 404, "NotFound", "for services"),
    ("/v9/namespaces/llm/pods/*/kvscale_vllm_requests_waiting", 404, "NotFound", "requested resource"),
    ("/v1beta2/nodes/n1/kvscale_vllm_requests_waiting", 404, "NotFound", "for nodes"),
])
async def test_errors_are_status_bodies(path: str, code: int, reason: str, message: str) -> None:
    status, body = await get(CUSTOM + path)
    assert (status, body["kind"], body["code"], body["reason"]) == (code, "Status", code, reason)
    assert message in body["message"]


async def test_loading_pod_is_left_out_not_zero() -> None:
    status, body = await get(CUSTOM + "/v1beta2/namespaces/llm/pods/*/kvscale_vllm_requests_waiting")
    assert status == 200
    names = [i["describedObject"]["name"] for i in body["items"]]
    assert names == ["vllm-7d9c6-abcde", "vllm-7d9c6-fghij", "vllm-sts-0"]  # no -loading, -nodata, -gone


async def test_stale_data_is_left_out() -> None:
    clock = [1000.0]
    async with direct_adapter(max_age=4.0, monotonic=lambda: clock[0]) as h:
        h.exporter.status = 500  # the exporter breaks; the last view ages past max_age
        clock[0] += 4.5
        await h.provider.refresh_once()
        resp = await h.client.get(CUSTOM + "/v1beta2/namespaces/llm/pods/*/kvscale_vllm_requests_waiting")
        assert resp.status == 503  # the only source is down: a neutral error, no values
        body = await resp.json()
        assert body["reason"] == "ServiceUnavailable" and "500" not in body["message"]


async def test_external_metrics_only_when_enabled() -> None:
    path = "/apis/external.metrics.k8s.io/v1beta1/namespaces/llm/kvscale_vllm_requests_waiting"
    status, _ = await get(path)
    assert status == 404
    status, body = await get(path + "?labelSelector=model_name%3Dllama-3-8b", external=True)
    assert status == 200 and body["kind"] == "ExternalMetricValueList"
    assert sorted(i["value"] for i in body["items"]) == ["12k", "5"]
    assert {i["metricLabels"]["pod"] for i in body["items"]} == {"vllm-7d9c6-abcde", "vllm-7d9c6-fghij"}


async def test_discovery_and_health() -> None:
    async with direct_adapter() as h:
        apis = await (await h.client.get("/apis")).json()
        assert apis["kind"] == "APIGroupList"
        group = await (await h.client.get("/apis/custom.metrics.k8s.io")).json()
        assert group["preferredVersion"]["version"] == "v1beta2"
        assert (await h.client.get("/apis/nope.k8s.io")).status == 404
        assert (await h.client.get("/healthz")).status == 200
        assert (await h.client.get("/readyz")).status == 200


async def test_self_metrics_count_requests_and_freshness() -> None:
    async with direct_adapter() as h:
        await h.client.get(CUSTOM + "/v1beta2/namespaces/llm/pods/*/nope")
        text = await (await h.client.get("/metrics")).text()
        assert 'kvscale_adapter_requests_total{code="404",route="/apis/custom.metrics.k8s.io/{version}/namespaces/' \
               '{namespace}/{resource}/{name}/{metric}"} 1.0' in text
        assert "kvscale_adapter_request_duration_seconds_bucket" in text
        assert f'kvscale_adapter_metric_freshness_seconds{{source="{h.exporter.url}metrics"}}' in text


class _DenyStrangers:
    def __init__(self) -> None:
        self.seen: list[Attributes] = []

    async def allowed(self, attrs: Attributes) -> bool:
        self.seen.append(attrs)
        return attrs.path == "/apis"


async def test_authorizer_denial_is_403_status() -> None:
    authz = _DenyStrangers()
    async with direct_adapter(security=Security(authenticator=None, authorizer=authz)) as h:
        assert (await h.client.get("/apis")).status == 200
        resp = await h.client.get(CUSTOM + "/v1beta2/namespaces/llm/pods/*/kvscale_vllm_requests_waiting")
        body = await resp.json()
        assert (resp.status, body["reason"], body["code"]) == (403, "Forbidden", 403)
        assert (await h.client.get("/healthz")).status == 200  # health is never authorized
    attrs = authz.seen[-1]
    assert (attrs.resource, attrs.subresource, attrs.name, attrs.namespace) == \
        ("pods", "kvscale_vllm_requests_waiting", "*", "llm")


def test_response_cache_token_ttl_and_size() -> None:
    now = [0.0]
    cache = ResponseCache(ttl=2.0, max_entries=2, monotonic=lambda: now[0])
    cache.put("a", (1, 0), b"A")
    assert cache.get("a", (1, 0)) == b"A"
    assert cache.get("a", (2, 0)) is None  # the view changed: recompute
    cache.put("a", (2, 0), b"A2")
    now[0] = 2.5
    assert cache.get("a", (2, 0)) is None  # older than one refresh interval
    cache.put("a", (2, 0), b"A3")
    cache.put("b", (2, 0), b"B")
    cache.get("a", (2, 0))
    cache.put("c", (2, 0), b"C")  # evicts the least recently used: b
    assert (cache.get("b", (2, 0)), cache.get("a", (2, 0)), len(cache)) == (None, b"A3", 2)


async def test_repeated_query_is_served_from_one_view_until_refresh() -> None:
    async with direct_adapter() as h:
        path = CUSTOM + "/v1beta2/namespaces/llm/pods/vllm-7d9c6-abcde/kvscale_vllm_requests_waiting"
        first = await (await h.client.get(path)).json()
        h.exporter.body = h.exporter.body.replace(b'pod="vllm-7d9c6-abcde",model_name="llama-3-8b"} 5',
                                                  b'pod="vllm-7d9c6-abcde",model_name="llama-3-8b"} 9')
        assert await (await h.client.get(path)).json() == first  # same view, same answer
        await h.provider.refresh_once()
        second = await (await h.client.get(path)).json()
        assert second["items"][0]["value"] == "9"
