"""The KEDA scaler in process over the direct provider, called over mTLS by a KEDA-like gRPC client:
values equal the custom-metrics API's, unknown is an error, bad metadata INVALID_ARGUMENT, only allowed
certificates get in, the stream pushes on the refresh that sees a change, zero replicas read the
activation source, and a rotated serving certificate is picked up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
import trustme

from adapter.inventory import load_pod_file
from adapter.promsource import PrometheusProvider, PrometheusSettings
from adapter.quantity import format_quantity
from adapter.scaler import NoDataError
from adapter.scaler.activation import ActivationSources
from adapter.scaler.demand import Demand
from adapter.scaler.server import ScalerEndpoint, start
from adapter.scaler.servicer import CallerCheck, ExternalScaler
from adapter.scaler.trigger import Activation
from adapter.service import MetricsService
from adapter.tls import TLSFiles
from tests.adapter.helpers import CUSTOM, EXPOSITION, PODS, FakeExporter, Harness, direct_adapter
from tests.adapter.keda_client import PKI, WAITING, KedaClient, pb, status_of

GATEWAY = b"""# TYPE llm_d_epp_flow_control_queue_size gauge
llm_d_epp_flow_control_queue_size{inference_pool="llama",priority="0"} %d
llm_d_epp_flow_control_queue_size{inference_pool="llama",priority="1"} 0
llm_d_epp_flow_control_queue_size{inference_pool="other",priority="0"} 9
"""
IDLE = {"family": "kvscale_vllm_requests_waiting", "deployment": "llama-idle", "target": "5",
        "activationSource": "gateway", "activationMetric": "llm_d_epp_flow_control_queue_size",
        "activationLabels": "inference_pool=llama"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Served:
    address: str
    pki: PKI
    harness: Harness
    gateway: FakeExporter
    clock: Clock

    def client(self, metadata: dict[str, str], **kw: object) -> KedaClient:
        return KedaClient(self.address, self.pki.credentials(**kw), metadata=metadata)  # type: ignore[arg-type]

    async def custom(self, path: str) -> str:
        resp = await self.harness.client.get(CUSTOM + "/v1beta2/namespaces/llm/" + path)
        assert resp.status == 200, await resp.text()
        (item,) = (await resp.json())["items"]
        value: str = item["value"]
        return value


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    pki = PKI(tmp_path)
    clock = Clock()
    gateway = FakeExporter(GATEWAY % 0)
    await gateway.server.start_server()
    tasks: list[asyncio.Task[None]] = []
    async with direct_adapter(max_age=30, monotonic=clock) as h, aiohttp.ClientSession() as session:
        sources = ActivationSources(session=session, urls={"gateway": gateway.url + "metrics"}, ttl=0.0)
        demand = Demand(service=MetricsService(provider=h.provider, pods=load_pod_file(PODS)), sources=sources,
                        default_quantile="0.95")
        scaler = ExternalScaler(demand=demand, caller=CallerCheck(["keda-operator"]), changed=h.provider.wait_changed)
        files = TLSFiles(pki.cert_file, pki.key_file, (pki.client_ca_file,))
        server, port = await start(scaler, ScalerEndpoint("127.0.0.1", 0, files, reload_interval=0.1), tasks)
        try:
            yield Served(f"127.0.0.1:{port}", pki, h, gateway, clock)
        finally:
            await server.stop(None)
            for task in tasks:
                task.cancel()
            await gateway.server.close()


@pytest.mark.parametrize(("metadata", "path"), [
    (WAITING, "deployments.apps/vllm/kvscale_vllm_requests_waiting"),
    ({**WAITING, "family": "kvscale_vllm_ttft_seconds", "quantile": "0.99", "target": "0.8"},
     "deployments.apps/vllm/kvscale_vllm_ttft_seconds?metricLabelSelector=quantile%3D0.99"),
    ({"family": "kvscale_vllm_ttft_seconds", "deployment": "vllm", "target": "0.8"},  # the policy's 0.95
     "deployments.apps/vllm/kvscale_vllm_ttft_seconds"),
    ({"family": "kvscale_vllm_kv_cache_usage_ratio", "podSelector": "pod-template-hash=7d9c6", "target": "0.75"},
     "deployments.apps/vllm/kvscale_vllm_kv_cache_usage_ratio"),
    ({"family": "kvscale_vllm_kv_cache_usage_ratio", "statefulset": "vllm-sts", "aggregation": "mean",
      "target": "0.75"}, "statefulsets.apps/vllm-sts/kvscale_vllm_kv_cache_usage_ratio"),
])
async def test_value_is_the_custom_metrics_value_for_the_same_workload(
        served: Served, metadata: dict[str, str], path: str) -> None:
    client = served.client(metadata)
    try:
        value, active = await client.poll()
    finally:
        await client.close()
    assert format_quantity(value) == await served.custom(path)
    assert active == (value > 0)  # activationTarget defaults to 0, as KEDA's own scalers


async def test_metric_spec_is_the_target_as_a_float(served: Served) -> None:
    client = served.client({**WAITING, "family": "kvscale_vllm_ttft_seconds", "target": "0.8"})
    try:
        assert await client.metric_spec() == ("kvscale_vllm_ttft_seconds", 0.8)
        assert (await client.value("kvscale_vllm_ttft_seconds")) > 0  # the name KEDA sends back
        assert await status_of(client.value("kvscale_vllm_requests_waiting")) == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await client.close()


async def test_unknown_is_an_error_never_zero(served: Served) -> None:
    h = served.harness
    client = served.client(WAITING)
    try:
        # Every pod of the Deployment marked not serving (model loading): NOT_FOUND, not 0.
        h.exporter.body = EXPOSITION.replace(b'pod="vllm-7d9c6-abcde",model_name="llama-3-8b"} 1',
                                             b'pod="vllm-7d9c6-abcde",model_name="llama-3-8b"} 0').replace(
            b'pod="vllm-7d9c6-fghij",model_name="llama-3-8b"} 1', b'pod="vllm-7d9c6-fghij",model_name="llama-3-8b"} 0')
        await h.provider.refresh_once()
        assert await status_of(client.value()) == grpc.StatusCode.NOT_FOUND
        assert await status_of(client.stub.IsActive(client.ref)) == grpc.StatusCode.NOT_FOUND
        # The exporter gone past max-age: the source is down, UNAVAILABLE.
        h.exporter.status = 500
        served.clock.now += 60
        await h.provider.refresh_once()
        assert await status_of(client.value()) == grpc.StatusCode.UNAVAILABLE
        # The target needs no data: KEDA can still build its HPA.
        assert await client.metric_spec() == ("kvscale_vllm_requests_waiting", 5.0)
    finally:
        await client.close()


async def test_an_infinite_value_is_unknown_too(served: Served) -> None:
    h = served.harness
    h.exporter.body = EXPOSITION.replace(b'pod="vllm-7d9c6-abcde",model_name="llama-3-8b"} 0.75',
                                         b'pod="vllm-7d9c6-abcde",model_name="llama-3-8b"} +Inf')
    await h.provider.refresh_once()
    client = served.client({"family": "kvscale_vllm_kv_cache_usage_ratio", "deployment": "vllm", "target": "1"})
    try:
        assert await status_of(client.value()) == grpc.StatusCode.NOT_FOUND
    finally:
        await client.close()
    resp = await h.client.get(CUSTOM + "/v1beta2/namespaces/llm/deployments.apps/vllm/"
                              "kvscale_vllm_kv_cache_usage_ratio")
    assert resp.status == 404  # the custom-metrics API's answer for the same view


@pytest.mark.parametrize(("change", "message"), [
    ({"family": "kvscale_gpu_utilization_ratio"}, "not one kvscale serves"),
    ({"family": "vllm:num_requests_waiting"}, "not one kvscale serves"),
    ({"target": "-1"}, "target"),
    ({"target": "five"}, "not a number"),
    ({"quantile": "0.95"}, "has no quantiles"),
    ({"aggregation": "max"}, "aggregates over pods by sum"),
    ({"podSelector": "app=vllm"}, "exactly one of deployment"),
    ({"treshold": "5"}, "unknown scalerMetadata key 'treshold'"),
    ({"activationSource": "nowhere", "activationMetric": "q"}, "not configured"),
])
async def test_bad_metadata_is_invalid_argument_on_every_call(
        served: Served, change: dict[str, str], message: str) -> None:
    client = served.client({**WAITING, **change})
    try:
        calls = [client.stub.GetMetricSpec(client.ref), client.stub.IsActive(client.ref),
                 client.stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=client.ref))]
        for call in calls:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert message in str(err.value.details())
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await anext(client.stream())
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await client.close()


@pytest.mark.parametrize(("credentials", "code"), [
    ({"cn": "someone-else"}, grpc.StatusCode.PERMISSION_DENIED),  # the KEDA CA, a name not allowed
    ({"cn": "keda-operator", "ca": "rogue"}, grpc.StatusCode.UNAVAILABLE),  # handshake refused
    ({"cn": None}, grpc.StatusCode.UNAVAILABLE),  # no client certificate: handshake refused
])
async def test_a_caller_without_an_allowed_certificate_is_refused(
        served: Served, credentials: dict[str, str | None], code: grpc.StatusCode) -> None:
    ca = served.pki.rogue_ca if credentials.get("ca") == "rogue" else None
    client = KedaClient(served.address, served.pki.credentials(credentials["cn"], ca=ca), metadata=WAITING)
    try:
        for call in (client.stub.GetMetricSpec(client.ref, timeout=10), client.stub.IsActive(client.ref, timeout=10)):
            assert await status_of(call) == code
    finally:
        await client.close()


async def _next(stream: AsyncIterator[bool]) -> bool:
    return await asyncio.wait_for(anext(stream), 10)  # a hang guard, not a timing assertion


async def test_stream_pushes_a_spike_on_the_refresh_that_sees_it(served: Served) -> None:
    h = served.harness
    client = served.client({**WAITING, "activationTarget": "20000"})  # the Deployment has 12005 waiting
    stream = client.stream()
    try:
        assert await _next(stream) is False  # the current state, at once
        pending = asyncio.ensure_future(_next(stream))
        await asyncio.sleep(0.3)
        assert not pending.done()  # nothing changed, nothing pushed
        h.exporter.body = EXPOSITION.replace(b'pod="vllm-7d9c6-fghij",model_name="llama-3-8b"} 12000',
                                             b'pod="vllm-7d9c6-fghij",model_name="llama-3-8b"} 30000')
        await asyncio.sleep(0.3)
        assert not pending.done()  # the exporter changed, but the adapter's view has not been refreshed
        await h.provider.refresh_once()  # the one refresh that reads the spike
        assert await pending is True
        h.exporter.body = EXPOSITION
        await h.provider.refresh_once()
        assert await _next(stream) is False
    finally:
        await stream.aclose()
        await client.close()


async def test_zero_replicas_read_demand_from_the_activation_source(served: Served) -> None:
    idle = served.client(IDLE)
    blind = served.client({k: v for k, v in IDLE.items() if not k.startswith("activation")})
    try:
        assert await idle.poll() == (0.0, False)  # no pods: no pod demand; the queue is empty
        served.gateway.body = GATEWAY % 3
        assert await idle.poll() == (0.0, True)  # 3 queued at the router for this pool wake it
        stream = idle.stream()
        assert await _next(stream) is True
        served.gateway.body = GATEWAY % 0
        await served.harness.provider.refresh_once()  # streams re-read the source on each refresh
        assert await _next(stream) is False
        await stream.aclose()
        assert await status_of(blind.value()) == grpc.StatusCode.NOT_FOUND  # at zero with no source: unknown
        served.gateway.status = 503
        assert await status_of(idle.value()) == grpc.StatusCode.UNAVAILABLE  # the source down: unknown, not 0
        assert await status_of(idle.stub.IsActive(idle.ref)) == grpc.StatusCode.UNAVAILABLE
    finally:
        await idle.close()
        await blind.close()


async def test_a_rotated_serving_certificate_is_served_without_a_restart(served: Served) -> None:
    new_ca = trustme.CA()
    served.pki.write_server_pair(new_ca)
    client: Callable[[], KedaClient] = lambda: KedaClient(  # noqa: E731
        served.address, served.pki.credentials(trust=new_ca), metadata=WAITING)
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        fresh = client()
        try:
            assert await fresh.metric_spec() == ("kvscale_vllm_requests_waiting", 5.0)
            break
        except grpc.aio.AioRpcError:
            assert asyncio.get_running_loop().time() < deadline, "the new certificate was never served"
            await asyncio.sleep(0.2)
        finally:
            await fresh.close()


async def test_the_simulators_keda_model_reads_through_the_scaler(served: Served) -> None:
    from simulator.autoscaling.keda import ScaledObject, ScaledObjectSpec, Trigger
    from simulator.autoscaling.keda_grpc import ScalerSource

    leaf = served.pki.client_ca.issue_cert(common_name="keda-operator")
    source = ScalerSource(served.address, namespace="llm", workload={"deployment": "vllm"},
                          root_certificates=served.pki.server_ca.cert_pem.bytes(),
                          private_key=leaf.private_key_pem.bytes(),
                          certificate_chain=b"".join(b.bytes() for b in leaf.cert_chain_pems))
    model = ScaledObject(ScaledObjectSpec([Trigger("kvscale_vllm_requests_waiting", 5.0, type="external")]))
    try:
        assert await asyncio.to_thread(model.served_value, "s0-external", source, 2) == 12005.0
        served.harness.exporter.status = 500
        served.clock.now += 60
        await served.harness.provider.refresh_once()
        assert await asyncio.to_thread(model.served_value, "s0-external", source, 2) is None  # unknown, not 0
        assert model.failures == 1  # counted toward fallback, as KEDA does
    finally:
        source.close()


async def test_activation_from_a_promql_query_on_the_real_prometheus(served: Served, prometheus_factory: Any) -> None:
    host = served.gateway.url.removeprefix("http://").rstrip("/")
    prom = await asyncio.to_thread(prometheus_factory, {"scrape_configs": [
        {"job_name": "epp", "static_configs": [{"targets": [host]}]}]})
    served.gateway.body = GATEWAY % 4
    query = 'sum(llm_d_epp_flow_control_queue_size{inference_pool="llama"})'
    async with aiohttp.ClientSession() as session:
        promql = PrometheusProvider(session=session, settings=PrometheusSettings(prom.url))
        sources = ActivationSources(session=session, urls={}, prometheus=promql)
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            try:
                if await sources.demand(Activation("prometheus", query=query)) == 4.0:
                    break
            except NoDataError:
                pass  # not scraped yet: unknown, never 0
            assert asyncio.get_running_loop().time() < deadline, "Prometheus never had the router's queue"
            await asyncio.sleep(0.2)
        with pytest.raises(NoDataError):  # a query with no series is unknown demand
            await sources.demand(Activation("prometheus", query='sum(llm_d_epp_flow_control_queue_size{x="y"})'))


async def test_the_stream_is_woken_by_a_refresh_on_the_providers_own_thread(served: Served) -> None:
    """The runner refreshes the direct view on a thread and loop of its own: streams still wake on it."""
    h = served.harness
    asyncio.get_running_loop().set_debug(True)  # asyncio then refuses a wake-up from another thread's loop
    refresher = asyncio.create_task(h.provider.run_in_thread())
    client = served.client({**WAITING, "activationTarget": "20000"})
    stream = client.stream()
    try:
        assert await _next(stream) is False
        h.exporter.body = EXPOSITION.replace(b'pod="vllm-7d9c6-fghij",model_name="llama-3-8b"} 12000',
                                             b'pod="vllm-7d9c6-fghij",model_name="llama-3-8b"} 30000')
        assert await _next(stream) is True
    finally:
        await stream.aclose()
        await client.close()
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
