"""GPU faults through the fake libnvidia-ml under the real exporter process: a GPU lost mid-run, an XID
storm, NVML failing every call (the driver unloaded under us) and a wedged driver call. The exporter
keeps serving /metrics and /healthz, and its vLLM series do not change.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.contract.exposition import Exposition
from tests.chaos.conftest import scrape, status_of, wait_until
from tests.conftest import VLLM_FIXTURES, Processes, start_exporter, start_target
from tests.exporter.gpu.fakenvml import H100X8, compile_fake, profile_uuids
from tests.exporter.gpu.kubelet import FakeKubelet

pytestmark = pytest.mark.chaos

POD = "vllm-a"
GPUS = [str(i) for i in range(8)]
XIDS = (13, 31, 43, 48, 63, 64, 74, 79, 92, 94, 95, 119)


@pytest.fixture
def kubelet() -> Iterator[FakeKubelet]:
    server = FakeKubelet()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


def _vllm_series(m: Exposition) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {(name, tuple(sorted(labels.items()))) for name, samples in m.samples.items()
            if name.startswith("kvscale_vllm_") for labels, _ in samples}


def _gpu_up(m: Exposition) -> dict[str, float]:
    return {labels["gpu"]: v for labels, v in m.samples.get("kvscale_gpu_up", [])}


def _nvml_success(m: Exposition) -> float | None:
    return next((v for labels, v in m.samples.get("kvscale_exporter_collector_success", [])
                 if labels["collector"] == "nvml"), None)


def _xid_counts(m: Exposition) -> Counter[tuple[str, str]]:
    samples = m.samples.get("kvscale_gpu_xid_errors_total", [])
    return Counter({(labels["gpu"], labels["xid"]): int(v) for labels, v in samples})


class Node:
    """The exporter over one vLLM pod and eight fake H100s; faults appended to the fake's control file."""

    def __init__(self, url: str, control: Path) -> None:
        self.url, self.control = url, control
        self.baseline: set[tuple[str, tuple[tuple[str, str], ...]]] = set()

    def inject(self, *lines: str) -> None:
        with self.control.open("a") as f:
            f.write("".join(line + "\n" for line in lines))

    def wait(self, what: str, check: object, timeout: float = 20.0) -> Exposition:
        found: list[Exposition] = []

        def probe() -> bool:
            m = scrape(self.url)
            found[:] = [m]
            return bool(check(m))  # type: ignore[operator]

        wait_until(what, probe, timeout, interval=0.2)
        return found[0]

    def assert_serving(self, m: Exposition) -> None:
        """The node still answers, and the vLLM half is exactly as before the fault."""
        assert status_of(self.url + "/healthz") == 200
        assert _vllm_series(m) == self.baseline
        assert next(v for labels, v in m.samples["kvscale_vllm_up"] if labels["pod"] == POD) == 1.0


def test_gpu_faults_leave_the_exporter_serving(procs: Processes, kubelet: FakeKubelet, tmp_path: Path) -> None:
    nvml_dir = compile_fake(tmp_path / "nvml")
    control = tmp_path / "control"
    control.write_text("")
    uuids = profile_uuids(H100X8)
    kubelet.pods = {("demo", POD): {"vllm": [("nvidia.com/gpu", uuids[0:2])]}}
    target = start_target(procs, POD, VLLM_FIXTURES / "v0.33.0-single-engine.prom")
    url = start_exporter(procs, "exporter", {f"demo/{POD}": target}, "--nvml", "on", "--node-name", "gpu-node-1",
                         "--pod-resources-socket", kubelet.socket,
                         env={"LD_LIBRARY_PATH": str(nvml_dir), "FAKE_NVML_PROFILE": str(H100X8),
                              "FAKE_NVML_CONTROL": str(control)})
    node = Node(url, control)
    m = node.wait("all GPUs up and the vLLM window filled", lambda m: _gpu_up(m) == dict.fromkeys(GPUS, 1.0)
                  and any(n == "kvscale_vllm_generation_tokens_per_second" for n, _ in _vllm_series(m)))
    node.baseline = _vllm_series(m)

    # A GPU lost mid-run: it alone reads down, with no other series; the others keep reporting.
    node.inject("lost 3")
    m = node.wait("GPU 3 down", lambda m: _gpu_up(m).get("3") == 0.0)
    assert _gpu_up(m) == {**dict.fromkeys(GPUS, 1.0), "3": 0.0}
    assert {labels["gpu"] for labels, _ in m.samples["kvscale_gpu_power_watts"]} == set(GPUS) - {"3"}
    assert _nvml_success(m) == 1.0
    node.assert_serving(m)

    # XID storm: 3 x 900 events over 11 GPUs' worth of codes; every one counted, per GPU and code.
    injected: Counter[tuple[str, str]] = Counter()
    healthy = [g for g in GPUS if g != "3"]
    for batch in range(3):
        lines = []
        for i in range(900):
            gpu, xid = healthy[(i + batch) % len(healthy)], XIDS[i % len(XIDS)]
            lines.append(f"xid {gpu} {xid} -1")
            injected[(gpu, str(xid))] += 1
        node.inject(*lines)
        total = sum(injected.values())
        m = node.wait(f"{total} XIDs counted", lambda m, total=total: sum(_xid_counts(m).values()) >= total)
        node.assert_serving(m)
    assert _xid_counts(m) == injected

    # NVML fails every call (driver unloaded): the GPU collector fails, the rest of the node does not.
    node.inject("fail_all")
    m = node.wait("NVML collector failing", lambda m: _nvml_success(m) == 0.0)
    node.assert_serving(m)
    node.inject("ok_all", "back 3")
    m = node.wait("NVML back, GPU 3 found again", lambda m: _nvml_success(m) == 1.0
                  and _gpu_up(m) == dict.fromkeys(GPUS, 1.0))
    assert _xid_counts(m) == injected  # the counters survived the outage
    node.assert_serving(m)

    # A driver call that never returns: cycles go on without NVML; vLLM keeps being collected.
    node.inject("hang")
    m = node.wait("NVML collector failing on the hung call", lambda m: _nvml_success(m) == 0.0)
    durations = set()
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:  # fresh collections, not a frozen body
        m = scrape(url)
        node.assert_serving(m)
        durations |= {v for labels, v in m.samples["kvscale_exporter_target_scrape_duration_seconds"]}
        time.sleep(0.3)
    assert len(durations) >= 2
    node.inject("release")
    node.wait("NVML back after the release", lambda m: _nvml_success(m) == 1.0)
