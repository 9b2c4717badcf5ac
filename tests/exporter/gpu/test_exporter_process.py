"""The real exporter process with the fake libnvidia-ml and a fake kubelet: /metrics end to end."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator

import pytest

from exporter.contract.exposition import Exposition, parse_bytes
from tests.conftest import PYTHON, VLLM_FIXTURES, Processes, free_port, start_target, wait_http
from tests.exporter.gpu.fakenvml import H100X8, FakeLibs, profile_uuids
from tests.exporter.gpu.kubelet import FakeKubelet

PRICE = 2.5


@pytest.fixture
def procs() -> Iterator[Processes]:
    processes = Processes()
    yield processes
    processes.stop()


def scrape(url: str) -> Exposition:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        return parse_bytes(resp.read())


def healthy(exposition: Exposition) -> bool:
    """A cycle where every collector succeeded and the cost could be computed."""
    success = {labels["collector"]: v for labels, v in exposition.samples.get("kvscale_exporter_collector_success", [])}
    return (success == {"nvml": 1.0, "podresources": 1.0, "vllm": 1.0}
            and bool(exposition.samples.get("kvscale_vllm_cost_per_million_tokens_dollars")))


def poll(url: str, timeout: float = 60.0) -> Exposition:
    deadline = time.monotonic() + timeout
    while True:
        exposition = scrape(url)
        if healthy(exposition):
            return exposition
        if time.monotonic() > deadline:
            raise AssertionError(f"no healthy cycle with a cost on {url}/metrics after {timeout}s")
        time.sleep(0.2)


def test_exporter_serves_attributed_gpus_and_costs_them(procs: Processes, kubelet: FakeKubelet,
                                                        fake_libs: FakeLibs) -> None:
    uuids = profile_uuids(H100X8)
    kubelet.pods = {("demo", "vllm-a"): {"vllm": [("nvidia.com/gpu", uuids[0:2])]}}
    target = start_target(procs, "vllm-a", VLLM_FIXTURES / "v0.33.0-dp2-optional-features.prom")
    port = free_port()
    procs.start("exporter", [
        PYTHON, "-m", "exporter", "--listen", f"127.0.0.1:{port}", "--nvml", "on", "--node-name", "gpu-node-1",
        "--pod-resources-socket", kubelet.socket, "--interval", "1", "--window", "30", "--scrape-timeout", "0.5",
        "--gpu-price-per-hour", str(PRICE), "--vllm-target", f"demo/vllm-a={target}/metrics",
    ], env={"LD_LIBRARY_PATH": str(fake_libs.full), "FAKE_NVML_PROFILE": str(H100X8)})
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/readyz", timeout=30)
    metrics = poll(url)
    samples = metrics.samples
    up = {labels["gpu"]: (labels["uuid"], v) for labels, v in samples["kvscale_gpu_up"]}
    assert up == {str(i): (uuid, 1.0) for i, uuid in enumerate(uuids)}
    held = {(labels["gpu"], labels["uuid"], labels["pod"]) for labels, _ in samples["kvscale_gpu_allocation_info"]}
    assert held == {("0", uuids[0], "vllm-a"), ("1", uuids[1], "vllm-a")}
    assert metrics.types["kvscale_gpu_power_watts"] == "gauge"

    # The pod's cost uses its 2 attributed GPUs: gpus = cost x tokens/s x 3600 / (price x 1e6).
    def pod_value(name: str) -> float:
        return next(v for labels, v in samples[name] if labels["pod"] == "vllm-a")

    tokens = (pod_value("kvscale_vllm_prompt_tokens_per_second")
              + pod_value("kvscale_vllm_generation_tokens_per_second"))
    gpus = pod_value("kvscale_vllm_cost_per_million_tokens_dollars") * tokens * 3600 / (PRICE * 1e6)
    assert gpus == pytest.approx(2.0)
