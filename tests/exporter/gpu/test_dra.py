"""DRA attribution: the kubelet's claim devices (real gRPC fake) resolved to UUIDs through this node's
ResourceSlices (the fake API server, real ``kubernetes`` client), on the real pynvml over the fake library."""

from __future__ import annotations

import time
from typing import Any

import pytest

from exporter.gpu.dra import ClaimDevice, SliceDevice, resolve, slice_devices
from tests.exporter.gpu.conftest import Cycle
from tests.exporter.gpu.fakenvml import H100X8, MIG, profile_uuids
from tests.exporter.gpu.kubelet import FakeKubelet
from tests.kube.apiserver import FakeApiServer
from tests.kube.objects import make_pod, status

DRIVER = "gpu.nvidia.com"
NODE = "gpu-node-1"
H100 = profile_uuids(H100X8)
MIGS = profile_uuids(MIG, "mig")
MIG_GPUS = profile_uuids(MIG)


def attrs(version: str, values: dict[str, str]) -> dict[str, Any]:
    typed = {k: {"string": v} for k, v in values.items()}
    return {"attributes": typed} if version == "v1" else {"basic": {"attributes": typed}}


def resource_slice(name: str, devices: dict[str, dict[str, str]], *, version: str = "v1",
                   node: str = NODE, driver: str = DRIVER) -> dict[str, Any]:
    """A ResourceSlice as NVIDIA's DRA driver publishes it, in the v1 or v1beta1 shape."""
    return {"kind": "ResourceSlice", "apiVersion": f"resource.k8s.io/{version}",
            "metadata": {"name": name, "uid": f"uid-{name}"},
            "spec": {"driver": driver, "nodeName": node, "pool": {"name": node, "generation": 1,
                                                                  "resourceSliceCount": 1},
                     "devices": [{"name": dev, **attrs(version, values)} for dev, values in devices.items()]}}


def whole_gpus(version: str = "v1") -> dict[str, Any]:
    return resource_slice(f"{NODE}-gpus", {f"gpu-{i}": {"type": "gpu", "uuid": uuid} for i, uuid in enumerate(H100)},
                          version=version)


def holders(cycle: Cycle) -> set[tuple[str, str, str, str, str, str]]:
    return {(lab["gpu"], lab["namespace"], lab["pod"], lab["pod_uid"], lab["resource"], lab["claim"])
            for lab, _ in cycle.of("kvscale_gpu_allocation_info")}


def collect_until(child: Any, done: Any, timeout: float = 30.0) -> Cycle:
    """Collect until ``done(cycle)``: the watch lists (and sees events) in its own thread."""
    deadline = time.monotonic() + timeout
    cycle: Cycle
    while not done(cycle := child.collect()):
        assert time.monotonic() < deadline, child.log()
        time.sleep(0.05)
    return cycle


# -- pure -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_slice_devices_read_both_shapes(version: str) -> None:
    obj = resource_slice("s", {"gpu-0": {"type": "gpu", "uuid": H100[0]},
                               "mig-0-7": {"type": "mig", "uuid": MIGS[0], "parentUUID": MIG_GPUS[0],
                                           "profile": "1g.10gb"},
                               "nic-0": {"type": "nic"}}, version=version)
    assert slice_devices(obj) == {(DRIVER, NODE, "gpu-0"): SliceDevice(H100[0]),
                                  (DRIVER, NODE, "mig-0-7"): SliceDevice(MIGS[0], MIG_GPUS[0], "1g.10gb")}
    assert slice_devices(resource_slice("n", {"nic-0": {"type": "nic"}})) is None


def test_resolve_leaves_out_other_drivers_and_reports_missing_gpus() -> None:
    devices = {(DRIVER, NODE, "gpu-0"): SliceDevice(H100[0])}
    gpu = ClaimDevice("demo", "a", "vllm", "c", DRIVER, NODE, "gpu-0")
    late = ClaimDevice("demo", "a", "vllm", "c", DRIVER, NODE, "gpu-9")
    nic = ClaimDevice("demo", "a", "vllm", "n", "nic.example.com", "p", "nic-0")
    allocations, unresolved = resolve([gpu, late, nic], devices)
    assert [(a.resource, a.device_ids, a.claim) for a in allocations] == [(DRIVER, (H100[0],), "c")]
    assert unresolved == [late]


# -- through the collector -------------------------------------------------------------


def start(nvml_child: Any, kubelet: FakeKubelet, apiserver: FakeApiServer, **kwargs: Any) -> Any:
    return nvml_child(socket=kubelet.socket, dra="on", apiserver=apiserver.url, **kwargs)


def test_whole_gpus_by_claim_with_pod_uid_and_no_double_count(nvml_child: Any, kubelet: FakeKubelet,
                                                             apiserver: FakeApiServer) -> None:
    apiserver.store.put(whole_gpus())
    apiserver.store.put(resource_slice("other-node", {"gpu-0": {"uuid": "GPU-elsewhere"}}, node="gpu-node-2"))
    apiserver.store.put(make_pod("vllm-a", namespace="llm", node=NODE))
    # The device plugin and a claim both name GPU 0 for the same container: held once.
    kubelet.pods = {("llm", "vllm-a"): {"vllm": [("nvidia.com/gpu", [H100[0]])]}}
    kubelet.claims = {("llm", "vllm-a"): {"vllm": [("gpus", DRIVER, NODE, "gpu-0", None),
                                                   ("gpus", DRIVER, NODE, "gpu-1", None)]}}
    child = start(nvml_child, kubelet, apiserver)
    cycle = collect_until(child, lambda c: len(holders(c)) == 2 and all(h[3] for h in holders(c)))
    assert holders(cycle) == {("0", "llm", "vllm-a", "uid-llm-vllm-a", DRIVER, "gpus"),
                              ("1", "llm", "vllm-a", "uid-llm-vllm-a", DRIVER, "gpus")}
    assert cycle.pod_gpus == {("llm", "vllm-a"): 2.0}
    selectors = {q.get("fieldSelector") for path, q in apiserver.requests if path.endswith(("resourceslices", "pods"))}
    assert selectors == {f"spec.nodeName={NODE}"}  # only this node's slices and pods are read


def test_mig_and_shared_claims(nvml_child: Any, kubelet: FakeKubelet, apiserver: FakeApiServer) -> None:
    apiserver.store.put(resource_slice(f"{NODE}-mig", {
        "gpu-1": {"type": "gpu", "uuid": MIG_GPUS[1]},
        "gpu-0-mig-7": {"type": "mig", "uuid": MIGS[0], "parentUUID": MIG_GPUS[0], "profile": "1g.10gb"},
        "gpu-0-mig-2": {"type": "mig", "uuid": MIGS[3], "parentUUID": MIG_GPUS[0], "profile": "3g.40gb"}}))
    kubelet.claims = {
        ("llm", "tiny"): {"vllm": [("tiny", DRIVER, NODE, "gpu-0-mig-7", None)]},
        # One shared claim, two pods, each its own share of the 3g.40gb device.
        ("llm", "mid-a"): {"vllm": [("mid", DRIVER, NODE, "gpu-0-mig-2", "share-a")]},
        ("llm", "mid-b"): {"vllm": [("mid", DRIVER, NODE, "gpu-0-mig-2", "share-b")]},
        ("llm", "big"): {"vllm": [("big", DRIVER, NODE, "gpu-1", None)]},
    }
    child = start(nvml_child, kubelet, apiserver, profile=MIG)
    cycle = collect_until(child, lambda c: len(holders(c)) == 4)
    assert holders(cycle) == {("0/7", "llm", "tiny", "", DRIVER, "tiny"), ("0/2", "llm", "mid-a", "", DRIVER, "mid"),
                              ("0/2", "llm", "mid-b", "", DRIVER, "mid"), ("1", "llm", "big", "", DRIVER, "big")}
    whole = 85520809984
    assert cycle.pod_gpus == {("llm", "tiny"): pytest.approx(10334765056 / whole),
                              ("llm", "mid-a"): pytest.approx(42144366592 / whole / 2),
                              ("llm", "mid-b"): pytest.approx(42144366592 / whole / 2), ("llm", "big"): 1.0}
    assert len(cycle.of("kvscale_gpu_memory_used_bytes")) == 5  # shared or not, one series per device


def test_a_slice_that_appears_late_is_picked_up(nvml_child: Any, kubelet: FakeKubelet,
                                                apiserver: FakeApiServer) -> None:
    apiserver.store.put(resource_slice(f"{NODE}-early", {"gpu-0": {"uuid": H100[0]}}))
    kubelet.claims = {("llm", "a"): {"vllm": [("c", DRIVER, NODE, "gpu-0", None)]},
                      ("llm", "b"): {"vllm": [("d", DRIVER, NODE, "gpu-5", None)]}}
    child = start(nvml_child, kubelet, apiserver)
    early = collect_until(child, lambda c: bool(holders(c)))
    assert holders(early) == {("0", "llm", "a", "", DRIVER, "c")}  # gpu-5 unknown yet: not guessed
    apiserver.store.put(resource_slice(f"{NODE}-late", {"gpu-5": {"uuid": H100[5]}}))  # a watch event
    late = collect_until(child, lambda c: len(holders(c)) == 2)
    assert ("5", "llm", "b", "", DRIVER, "d") in holders(late)
    assert "DRA devices not (yet) in this node's ResourceSlices" in child.log()


def test_v1beta1_fallback_on_an_older_cluster(nvml_child: Any, kubelet: FakeKubelet,
                                              apiserver: FakeApiServer) -> None:
    missing = status(404, "NotFound", "the server could not find the requested resource")
    apiserver.failing_for["resource.k8s.io/v1/resourceslices"] = missing  # a cluster before 1.34
    apiserver.store.put(whole_gpus("v1beta1"))
    kubelet.claims = {("llm", "a"): {"vllm": [("c", DRIVER, NODE, "gpu-3", None)]}}
    child = start(nvml_child, kubelet, apiserver)
    cycle = collect_until(child, lambda c: bool(holders(c)))
    assert holders(cycle) == {("3", "llm", "a", "", DRIVER, "c")}
    assert "reading ResourceSlices as v1beta1" in child.log()
    paths = {path for path, _ in apiserver.requests}
    assert "/apis/resource.k8s.io/v1beta1/resourceslices" in paths
