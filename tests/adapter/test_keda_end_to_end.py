"""KEDA's calls against the real adapter process over real exporter processes over simulated vLLM engines,
over TLS with client certificates: pulled every polling interval, values equal the custom-metrics API's
at the same moment; a held-open StreamIsActive reports a queue spike; no fresh data is an error; bad
metadata and a caller without an allowed certificate are refused."""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import grpc
import pytest

from adapter.quantity import format_quantity
from tests.adapter.keda_client import PKI, KedaClient, status_of
from tests.adapter.test_end_to_end import Adapter
from tests.conftest import PYTHON, VLLM_FIXTURES, Processes, free_port, start_exporter, start_target

_POD = """- metadata:
    name: {name}
    namespace: demo
    labels: {{app: {app}, pod-template-hash: 6f7d8}}
    ownerReferences: [{{apiVersion: apps/v1, kind: ReplicaSet, name: {rs}, controller: true}}]
  status: {{phase: Running}}
"""
PODS_YAML = "apiVersion: v1\nkind: PodList\nitems:\n" + "".join(
    _POD.format(name=n, app=a, rs=r) for n, a, r in (("vllm-a", "vllm", "vllm-6f7d8"), ("vllm-b", "vllm", "vllm-6f7d8"),
                                                    ("silent-a", "silent", "silent-6f7d8")))
OBJECT = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/deployments.apps/vllm/"
WAITING = {"family": "kvscale_vllm_requests_waiting", "deployment": "vllm", "target": "5"}
POLLING_INTERVAL = 1.0  # KEDA's pollingInterval, scaled down


@dataclass
class Stack:
    adapter: Adapter
    keda: str
    pki: PKI
    targets: dict[str, str]

    def client(self, metadata: dict[str, str], cn: str = "keda-operator") -> KedaClient:
        return KedaClient(self.keda, self.pki.credentials(cn), metadata=metadata, namespace="demo")

    def custom(self, metric: str) -> str:
        status, body = self.adapter.get(OBJECT + metric)
        assert status == 200, body
        value: str = body["items"][0]["value"]
        return value

    def set_waiting(self, pod: str, value: float) -> None:
        request = urllib.request.Request(self.targets[pod] + "/control", method="POST",
                                         data=json.dumps({"set": {"vllm:num_requests_waiting": value}}).encode())
        with urllib.request.urlopen(request, timeout=5):
            pass


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("keda-e2e")
    procs = Processes()
    try:
        targets, urls = {}, []
        for pod, fixture in (("vllm-a", "v0.33.0-dp2-optional-features.prom"),
                             ("vllm-b", "v0.33.0-single-engine.prom")):
            targets[pod] = start_target(procs, pod, VLLM_FIXTURES / fixture)
            urls += ["--exporter-url", start_exporter(procs, f"exporter-{pod}", {f"demo/{pod}": targets[pod]})]
        (tmp / "pods.yaml").write_text(PODS_YAML)
        pki = PKI(tmp)
        pki.client_ca.cert_pem.write_to_path(str(tmp / "client-ca.pem"))  # HTTPS users: the same CA, for brevity
        context = ssl.create_default_context()
        pki.server_ca.configure_trust(context)
        pki.client_ca.issue_cert(common_name="e2e").configure_cert(context)
        port, keda_port = free_port(), free_port()
        procs.start("adapter", [
            PYTHON, "-m", "adapter", "--bind-address", "127.0.0.1", "--secure-port", str(port),
            "--tls-cert-file", str(pki.cert_file), "--tls-private-key-file", str(pki.key_file),
            "--client-ca-file", str(tmp / "client-ca.pem"), "--authorization-mode", "none", "--source", "direct",
            *urls, "--refresh-interval", "0.5", "--pods-file", str(tmp / "pods.yaml"),
            "--keda-port", str(keda_port), "--keda-client-ca-file", str(pki.client_ca_file),
            "--keda-allowed-names", "keda-operator"])
        adapter = Adapter(f"https://127.0.0.1:{port}", context, procs, {}, {})
        for metric in ("kvscale_vllm_requests_waiting", "kvscale_vllm_ttft_seconds?metricLabelSelector=quantile%3D0.5"):
            adapter.poll(OBJECT + metric, lambda s, b: s == 200)  # windowed quantiles need two collections
        yield Stack(adapter, f"127.0.0.1:{keda_port}", pki, targets)
    finally:
        procs.stop()


@pytest.fixture
async def waiting(stack: Stack) -> AsyncIterator[KedaClient]:
    client = stack.client(WAITING)
    yield client
    await client.close()


async def _same_moment(stack: Stack, client: KedaClient, metric: str) -> tuple[float, str]:
    """GetMetrics between two custom-metrics reads that agree (the view did not move in between)."""
    for _ in range(20):
        before = stack.custom(metric)
        value, _active = await client.poll()
        if stack.custom(metric) == before:
            return value, before
    raise AssertionError(f"{metric}: the view never held still across one poll")


@pytest.mark.parametrize("metadata", [
    WAITING,
    {**WAITING, "family": "kvscale_vllm_kv_cache_capacity_tokens", "target": "100000"},
    {**WAITING, "family": "kvscale_vllm_ttft_seconds", "quantile": "0.5", "target": "0.8"},
])
async def test_pulled_every_polling_interval_the_value_is_the_custom_metrics_value(
        stack: Stack, metadata: dict[str, str]) -> None:
    client = stack.client(metadata)
    metric = metadata["family"] + ("?metricLabelSelector=quantile%3D0.5" if "quantile" in metadata else "")
    try:
        assert (await client.metric_spec())[1] == float(metadata["target"])
        for _ in range(3):
            value, expected = await _same_moment(stack, client, metric)
            assert format_quantity(value) == expected
            await asyncio.sleep(POLLING_INTERVAL)
    finally:
        await client.close()


async def test_the_stream_reports_a_queue_spike(stack: Stack) -> None:
    client = stack.client({**WAITING, "activationTarget": "100"})
    stream = client.stream()
    try:
        assert await anext(stream) is False  # the engines' own queues are far below 100
        stack.set_waiting("vllm-a", 500)
        assert await anext(stream) is True  # pushed: no poll in between
        stack.set_waiting("vllm-a", 0)
        assert await anext(stream) is False
    finally:
        await stream.aclose()
        await client.close()


async def test_a_workload_without_fresh_data_is_an_error_not_zero(stack: Stack) -> None:
    client = stack.client({**WAITING, "deployment": "silent"})  # its pod has no exporter reporting it
    try:
        assert await status_of(client.value()) == grpc.StatusCode.NOT_FOUND
        assert await status_of(client.stub.IsActive(client.ref)) == grpc.StatusCode.NOT_FOUND
    finally:
        await client.close()


async def test_bad_metadata_and_unallowed_callers_are_refused(stack: Stack, waiting: KedaClient) -> None:
    bad, stranger = stack.client({**WAITING, "quantile": "0.9"}), stack.client(WAITING, cn="mallory")
    try:
        assert await status_of(bad.value()) == grpc.StatusCode.INVALID_ARGUMENT
        assert await status_of(stranger.value()) == grpc.StatusCode.PERMISSION_DENIED
        assert (await waiting.poll())[0] > 0  # the allowed caller, on the same server
    finally:
        await bad.close()
        await stranger.close()
