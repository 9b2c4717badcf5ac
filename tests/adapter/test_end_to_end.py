"""The adapter as a real process over real exporter processes over simulated vLLM pods (direct),
and over the shared stack's real Prometheus (prometheus); faults answered without invented values."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme

from adapter.inventory import PodInfo, StaticInventory
from adapter.promquery import query_for
from adapter.promsource import PrometheusProvider, PrometheusSettings
from adapter.provider import MetricQuery, SourceUnavailableError, served_metrics
from adapter.quantity import format_quantity
from adapter.selectors import parse_selector
from exporter.contract.exposition import parse_bytes
from tests.conftest import (
    PYTHON,
    VLLM_FIXTURES,
    Processes,
    Stack,
    free_port,
    start_exporter,
    start_target,
)

CUSTOM = "/apis/custom.metrics.k8s.io"
PODS_YAML = """apiVersion: v1
kind: PodList
items:
- metadata: {name: vllm-a, namespace: demo, labels: {app: vllm, model: tiny-llama}}
  status: {phase: Running}
- metadata: {name: vllm-b, namespace: demo, labels: {app: vllm, model: tiny-llama}}
  status: {phase: Running}
"""
WAITING = CUSTOM + "/v1beta2/namespaces/demo/pods/%2A/kvscale_vllm_kv_cache_capacity_tokens?labelSelector=app%3Dvllm"


@dataclass
class Adapter:
    url: str
    context: ssl.SSLContext
    procs: Processes
    exporters: dict[str, subprocess.Popen[bytes]]
    exporter_urls: dict[str, str]

    def get(self, path: str) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(self.url + path, context=self.context, timeout=10) as resp:
                raw, status = resp.read(), resp.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        except urllib.error.URLError:
            return 0, {}  # not listening yet, or gone
        return status, json.loads(raw) if raw.startswith(b"{") else {"text": raw.decode()}

    def poll(self, path: str, done: Any, timeout: float = 40.0) -> tuple[int, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            status, body = self.get(path)
            if done(status, body):
                return status, body
            if time.monotonic() > deadline:
                raise AssertionError(f"{path}: still {status} {body} after {timeout}s\n{self.procs.log('adapter')}")
            time.sleep(0.2)


def _write_pki(tmp: Path) -> tuple[list[str], ssl.SSLContext]:
    server_ca, client_ca = trustme.CA(), trustme.CA()
    leaf = server_ca.issue_cert("127.0.0.1")
    leaf.private_key_and_cert_chain_pem.write_to_path(str(tmp / "server.pem"))
    client_ca.cert_pem.write_to_path(str(tmp / "client-ca.pem"))
    user = client_ca.issue_cert(common_name="e2e")
    context = ssl.create_default_context()
    server_ca.configure_trust(context)
    user.configure_cert(context)
    flags = ["--tls-cert-file", str(tmp / "server.pem"), "--tls-private-key-file", str(tmp / "server.pem"),
             "--client-ca-file", str(tmp / "client-ca.pem")]
    return flags, context


@pytest.fixture(scope="module")
def direct_adapter_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Adapter]:
    tmp = tmp_path_factory.mktemp("adapter-e2e")
    procs = Processes()
    try:
        exporters, urls = {}, {}
        fixtures = {"vllm-a": "v0.33.0-dp2-optional-features.prom", "vllm-b": "v0.33.0-single-engine.prom"}
        for pod, fixture in fixtures.items():
            target = start_target(procs, pod, VLLM_FIXTURES / fixture)
            urls[pod] = start_exporter(procs, f"exporter-{pod}", {f"demo/{pod}": target})
            exporters[pod] = procs.procs[-1]
        (tmp / "pods.yaml").write_text(PODS_YAML)
        tls, context = _write_pki(tmp)
        port = free_port()
        procs.start("adapter", [PYTHON, "-m", "adapter", "--bind-address", "127.0.0.1", "--secure-port", str(port),
                                *tls, "--source", "direct", "--exporter-url", urls["vllm-a"], "--exporter-url",
                                urls["vllm-b"], "--refresh-interval", "0.5", "--pods-file", str(tmp / "pods.yaml")])
        adapter = Adapter(f"https://127.0.0.1:{port}", context, procs, exporters, urls)
        adapter.poll("/healthz", lambda s, b: s == 200)
        yield adapter
    finally:
        procs.stop()


def exporter_value(url: str, metric: str, pod: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        samples = parse_bytes(resp.read()).samples[metric]
    return next(v for labels, v in samples if labels["pod"] == pod)


def test_direct_serves_what_the_exporters_report(direct_adapter_process: Adapter) -> None:
    a = direct_adapter_process
    _, body = a.poll(WAITING, lambda s, b: s == 200 and len(b["items"]) == 2)
    values = {i["describedObject"]["name"]: i["value"] for i in body["items"]}
    for pod, url in a.exporter_urls.items():
        expected = exporter_value(url, "kvscale_vllm_kv_cache_capacity_tokens", pod)
        assert values[pod] == format_quantity(expected)


def test_direct_quantile_and_object_metrics(direct_adapter_process: Adapter) -> None:
    a = direct_adapter_process
    path = CUSTOM + "/v1beta1/namespaces/demo/pods/*/kvscale_vllm_ttft_seconds?metricLabelSelector=quantile%3D0.5"
    _, body = a.poll(path, lambda s, b: s == 200 and len(b["items"]) == 2)
    assert all(i["metricName"] == "kvscale_vllm_ttft_seconds" and i["window"] == 60 for i in body["items"])
    _, ns = a.poll(CUSTOM + "/v1beta2/namespaces/demo/metrics/kvscale_vllm_requests_running",
                   lambda s, b: s == 200)
    assert ns["items"][0]["describedObject"] == {"kind": "Namespace", "name": "demo", "apiVersion": "/v1"}


def test_direct_exporter_down_leaves_its_pod_out_then_503(direct_adapter_process: Adapter) -> None:
    a = direct_adapter_process
    a.poll(WAITING, lambda s, b: s == 200 and len(b["items"]) == 2)
    a.exporters["vllm-b"].terminate()
    _, body = a.poll(WAITING, lambda s, b: s == 200 and len(b["items"]) == 1)
    assert body["items"][0]["describedObject"]["name"] == "vllm-a"  # vllm-b left out, not reported as 0
    status, body = a.poll(CUSTOM + "/v1beta2/namespaces/demo/pods/vllm-b/kvscale_vllm_kv_cache_capacity_tokens",
                          lambda s, b: s != 200)
    assert (status, body["reason"]) == (404, "NotFound")
    a.exporters["vllm-a"].terminate()
    status, body = a.poll(WAITING, lambda s, b: s != 200)
    assert (status, body["reason"]) == (503, "ServiceUnavailable")
    assert "vllm" not in body["message"]  # neutral: the cause goes to the log, not to the caller
    assert "every exporter failed" in a.procs.log("adapter")


def _provider(session: aiohttp.ClientSession, url: str, timeout: float = 5.0) -> PrometheusProvider:
    return PrometheusProvider(session=session, settings=PrometheusSettings(url, timeout=timeout, max_age=30))


async def test_prometheus_source_matches_promql(scraped_stack: Stack) -> None:
    prom = scraped_stack.prometheus
    truth = {r["metric"]["pod"]: float(r["value"][1])
             for r in prom.wait_for('kvscale_vllm_ttft_seconds{quantile="0.95"}', min_results=2)}
    async with aiohttp.ClientSession() as session:
        provider = _provider(session, prom.url)
        values = await provider.pod_values("demo", ["vllm-a", "vllm-b", "ghost"],
                                           MetricQuery("kvscale_vllm_ttft_seconds"))
    got = {v.pod: v.value for v in values}
    assert set(got) == {"vllm-a", "vllm-b"}  # the pod with no series is left out
    for pod, value in got.items():
        assert value == pytest.approx(truth[pod], rel=0.5)  # windows move between the two reads


async def test_every_catalog_metric_has_valid_promql(scraped_stack: Stack) -> None:
    """Each built-in mapping runs on the real Prometheus; the core ones return both pods."""
    async with aiohttp.ClientSession() as session:
        provider = _provider(session, scraped_stack.prometheus.url)
        for info in served_metrics(60):
            expr = query_for(info, "demo", parse_selector(""), max_age=30)
            assert expr is not None
            result = await provider.query(expr)  # raises on a PromQL error
            if info.name in ("kvscale_vllm_requests_waiting", "kvscale_vllm_kv_cache_usage_ratio",
                             "kvscale_vllm_ttft_seconds"):
                assert {r["metric"]["pod"] for r in result} == {"vllm-a", "vllm-b"}, info.name


async def test_prometheus_histogram_fallback_for_quantiles(scraped_stack: Stack) -> None:
    """A quantile the exporter does not emit (0.75) comes from vLLM's buckets via histogram_quantile."""
    async with aiohttp.ClientSession() as session:
        provider = _provider(session, scraped_stack.prometheus.url)
        query = MetricQuery("kvscale_vllm_ttft_seconds", parse_selector("quantile=0.75"))
        deadline = time.monotonic() + 30
        while len(values := await provider.pod_values("demo", ["vllm-a", "vllm-b"], query)) < 2:
            assert time.monotonic() < deadline, values
            time.sleep(0.5)
    assert all(v.value > 0 for v in values)


async def test_prometheus_down_is_source_unavailable() -> None:
    async with aiohttp.ClientSession() as session:
        provider = _provider(session, f"http://127.0.0.1:{free_port()}", timeout=2.0)
        with pytest.raises(SourceUnavailableError, match=r"ClientConnectorError|Cannot connect"):
            await provider.pod_values("demo", ["vllm-a"], MetricQuery("kvscale_vllm_requests_waiting"))


def test_static_inventory_is_what_e2e_uses() -> None:
    inv = StaticInventory([PodInfo("demo", "vllm-a", {"app": "vllm"})])
    assert [p.name for p in inv.pods("demo")] == ["vllm-a"]
