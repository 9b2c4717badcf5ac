"""The HPA's metrics client against the real adapter app over TLS, authenticated as the front proxy."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import web

from adapter.auth import Authenticator, RequestHeaderConfig
from adapter.server import Security
from adapter.tls import TLSFiles, build_context
from simulator.autoscaling import HPA, HPASpec, MetricTarget, PodState
from simulator.autoscaling.adapter_source import AdapterClient, ScaleTarget
from tests.adapter.helpers import direct_adapter
from tests.conftest import free_port

WAITING = "kvscale_vllm_requests_waiting"
TARGET = ScaleTarget("llm", "vllm", {"app": "vllm"})
PODS = [PodState(n) for n in ("vllm-7d9c6-abcde", "vllm-7d9c6-fghij", "vllm-7d9c6-loading", "vllm-7d9c6-nodata")]


@dataclass
class Served:
    url: str
    server_ca: trustme.CA
    proxy_ca: trustme.CA
    dir: Path

    def context(self, client_ca: trustme.CA | None, cn: str = "front-proxy-client") -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self.server_ca.configure_trust(ctx)
        if client_ca is not None:
            client_ca.issue_cert(common_name=cn).configure_cert(ctx)
        return ctx


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    server_ca, proxy_ca = trustme.CA(), trustme.CA()
    crt, key = tmp_path / "server.crt", tmp_path / "server.key"
    leaf = server_ca.issue_cert("127.0.0.1")
    crt.write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    auth = Authenticator(requestheader=RequestHeaderConfig(proxy_ca.cert_pem.bytes(), ("front-proxy-client",)))
    async with direct_adapter(security=Security(authenticator=auth)) as h:
        runner = web.AppRunner(h.client.app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port,
                          ssl_context=build_context(TLSFiles(crt, key), extra_ca_pem=auth.trusted_pem)).start()
        try:
            yield Served(f"https://127.0.0.1:{port}", server_ca, proxy_ca, tmp_path)
        finally:
            await runner.cleanup()


async def test_hpa_reads_pods_and_object_metrics_through_the_adapter(served: Served) -> None:
    pods = MetricTarget("Pods", WAITING, "AverageValue", 5.0)
    obj = MetricTarget("Object", WAITING, "AverageValue", 5.0)
    async with aiohttp.ClientSession() as session:
        client = AdapterClient(served.url, session=session, ssl_context=served.context(served.proxy_ca),
                               target=TARGET)
        assert await client.preferred_version() == "v1beta2"
        got = await client.fetch([pods, obj])
    assert got.errors == {}
    assert got.pods(pods) == {"vllm-7d9c6-abcde": 5.0, "vllm-7d9c6-fghij": 12000.0}  # loading pod left out
    assert got.object(obj) == 12005.0
    decision = HPA(HPASpec(1, 5000, [pods, obj], behavior=None)).reconcile(0.0, 4, PODS, got)
    # Pods: ready avg 6002500m / 5000m = 1200.5; two missing pods at 0 -> 3001250m -> 600.25 * 4 -> 2401
    # Object AverageValue: ceil(12005 / 5) = 2401
    assert [p.replicas for p in decision.proposals] == [2401, 2401]


async def test_without_the_front_proxy_certificate_every_metric_fails_and_the_hpa_holds(served: Served) -> None:
    metric = MetricTarget("Pods", WAITING, "AverageValue", 5.0)
    async with aiohttp.ClientSession() as session:
        for ctx in (served.context(None), served.context(served.proxy_ca, cn="someone-else"),
                    served.context(trustme.CA())):
            client = AdapterClient(served.url, session=session, ssl_context=ctx, target=TARGET)
            got = await client.fetch([metric])
            assert metric.key in got.errors and got.pods(metric) == {}
            decision = HPA(HPASpec(1, 10, [metric])).reconcile(0.0, 4, PODS, got)
            assert decision.desired == 4 and decision.proposals[0].replicas is None


async def test_unknown_selection_is_a_failed_metric_not_zero(served: Served) -> None:
    metric = MetricTarget("Pods", WAITING, "AverageValue", 5.0)
    async with aiohttp.ClientSession() as session:
        client = AdapterClient(served.url, session=session, ssl_context=served.context(served.proxy_ca),
                               target=ScaleTarget("llm", "vllm", {"app": "nothing-matches"}))
        got = await client.fetch([metric])
    assert "404" in got.errors[metric.key]


def test_paths_are_the_controllers() -> None:
    client = AdapterClient.__new__(AdapterClient)
    client._target = TARGET
    ttft = MetricTarget("Pods", "kvscale_vllm_ttft_seconds", "AverageValue", 0.8, {"quantile": "0.95"})
    assert client.path_for("v1beta2", ttft) == (
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/llm/pods/%2A/kvscale_vllm_ttft_seconds"
        "?labelSelector=app%3Dvllm&metricLabelSelector=quantile%3D0.95")
    assert client.path_for("v1beta1", MetricTarget("Object", WAITING, "Value", 5.0)) == \
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/llm/deployments.apps/vllm/kvscale_vllm_requests_waiting"
    assert client.path_for("v1beta2", MetricTarget("External", "s0-prometheus", "AverageValue", 5.0,
                                                   {"scaledobject.keda.sh/name": "vllm"})) == \
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/llm/s0-prometheus?labelSelector=" \
        "scaledobject.keda.sh%2Fname%3Dvllm"
