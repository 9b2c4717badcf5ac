"""The GPU collector joined with the kubelet: pod labels, GPU shares, and attribution failures."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from tests.exporter.gpu.fakenvml import H100X8, MIG, profile_uuids
from tests.exporter.gpu.kubelet import FakeKubelet

H100 = profile_uuids(H100X8)
MIGS = profile_uuids(MIG, "mig")
MIG_GPUS = profile_uuids(MIG)


def pods_of(cycle: Any) -> dict[str, set[tuple[str, str, str]]]:
    """gpu -> the containers holding it, from kvscale_gpu_allocation_info (devices nobody holds are left out)."""
    out: dict[str, set[tuple[str, str, str]]] = {}
    for labels, value in cycle.of("kvscale_gpu_allocation_info"):
        assert value == 1.0
        out.setdefault(labels["gpu"], set()).add((labels["namespace"], labels["pod"], labels["container"]))
    return out


def device_labels_only(cycle: Any) -> None:
    """No device series carries who holds it (identity stays stable when attribution changes)."""
    for name, labels, _ in cycle.series:
        if name.startswith("kvscale_gpu_") and name != "kvscale_gpu_allocation_info":
            assert not {"namespace", "pod", "container"} & set(labels), (name, labels)


def test_whole_gpus_carry_their_pod(nvml_child: Any, kubelet: FakeKubelet) -> None:
    kubelet.pods = {
        ("llm", "vllm-70b-0"): {"vllm": [("nvidia.com/gpu", H100[0:4])]},
        ("llm", "vllm-8b-0"): {"vllm": [("nvidia.com/gpu", [H100[4]])], "proxy": [("cpu", ["0"])]},
    }
    cycle = nvml_child(socket=kubelet.socket).collect()
    assert cycle.success
    assert pods_of(cycle) == {**{str(i): {("llm", "vllm-70b-0", "vllm")} for i in range(4)},
                              "4": {("llm", "vllm-8b-0", "vllm")}}
    device_labels_only(cycle)
    assert cycle.labels("kvscale_gpu_allocation_info", "4") == {
        "node": "gpu-node-1", "gpu": "4", "uuid": H100[4], "namespace": "llm", "pod": "vllm-8b-0",
        "container": "vllm", "pod_uid": "", "resource": "nvidia.com/gpu", "claim": ""}
    assert cycle.pod_gpus == {("llm", "vllm-70b-0"): 4.0, ("llm", "vllm-8b-0"): 1.0}
    assert cycle.value("kvscale_exporter_collector_success", collector="podresources") == 1.0
    assert cycle.value("kvscale_exporter_collector_duration_seconds", collector="podresources") > 0


def test_time_sliced_gpu_is_shared_not_duplicated(nvml_child: Any, kubelet: FakeKubelet) -> None:
    kubelet.pods = {
        ("llm", "small-a"): {"vllm": [("nvidia.com/gpu.shared", [f"{H100[6]}::0"])]},
        ("llm", "small-b"): {"vllm": [("nvidia.com/gpu.shared", [f"{H100[6]}::1", f"{H100[6]}::2"])]},
        ("llm", "solo"): {"vllm": [("nvidia.com/gpu.shared", [f"{H100[7]}::3"])]},
    }
    cycle = nvml_child(socket=kubelet.socket).collect()
    assert len(cycle.of("kvscale_gpu_memory_used_bytes")) == 8  # one series per GPU, never one per pod
    # Both pods hold GPU 6 (NVML cannot split it): two info series, still one series per device reading.
    assert pods_of(cycle)["6"] == {("llm", "small-a", "vllm"), ("llm", "small-b", "vllm")}
    assert pods_of(cycle)["7"] == {("llm", "solo", "vllm")}
    assert cycle.pod_gpus == {("llm", "small-a"): pytest.approx(1 / 3), ("llm", "small-b"): pytest.approx(2 / 3),
                              ("llm", "solo"): 1.0}


def test_mig_devices_are_attributed_one_by_one(nvml_child: Any, kubelet: FakeKubelet) -> None:
    kubelet.pods = {
        ("llm", "tiny-a"): {"vllm": [("nvidia.com/mig-1g.10gb", [MIGS[0]])]},
        ("llm", "tiny-b"): {"vllm": [("nvidia.com/mig-1g.10gb", [MIGS[1]])]},
        ("llm", "mid"): {"vllm": [("nvidia.com/mig-3g.40gb", [MIGS[3]])]},
        ("llm", "big"): {"vllm": [("nvidia.com/gpu", [MIG_GPUS[1]])]},
    }
    cycle = nvml_child(profile=MIG, socket=kubelet.socket).collect()
    assert pods_of(cycle) == {"0/7": {("llm", "tiny-a", "vllm")}, "0/8": {("llm", "tiny-b", "vllm")},
                              "0/2": {("llm", "mid", "vllm")}, "1": {("llm", "big", "vllm")}}
    whole = 85520809984
    assert cycle.pod_gpus == {("llm", "tiny-a"): pytest.approx(10334765056 / whole),
                              ("llm", "tiny-b"): pytest.approx(10334765056 / whole),
                              ("llm", "mid"): pytest.approx(42144366592 / whole), ("llm", "big"): 1.0}
    assert cycle.value("kvscale_gpu_xid_errors_total", xid="31") == 1.0
    # The fault is on MIG device 0/8, which tiny-b holds: a join on uuid names it.
    xid_uuid = cycle.labels("kvscale_gpu_xid_errors_total", "0/8")["uuid"]
    assert [lab["pod"] for lab, _ in cycle.of("kvscale_gpu_allocation_info") if lab["uuid"] == xid_uuid] == ["tiny-b"]


@pytest.mark.parametrize(("fault", "cause"), [
    ("missing", "does not exist: mount"),
    ("slow", "took longer than 1s"),
    ("error", "INTERNAL: injected failure"),
])
def test_attribution_failure_keeps_gpu_series_without_pod_labels(nvml_child: Any, kubelet: FakeKubelet,
                                                                 fault: str, cause: str) -> None:
    kubelet.pods = {("llm", "vllm-70b-0"): {"vllm": [("nvidia.com/gpu", H100[0:4])]}}
    socket = kubelet.socket + ".missing" if fault == "missing" else kubelet.socket
    kubelet.delay = 30.0 if fault == "slow" else 0.0
    kubelet.error = grpc.StatusCode.INTERNAL if fault == "error" else None
    child = nvml_child(socket=socket)
    cycles = [child.collect(), child.collect()]
    for cycle in cycles:
        assert cycle.success  # the GPU collector still works
        assert cycle.by_gpu("kvscale_gpu_up") == {str(i): 1.0 for i in range(8)}
        assert pods_of(cycle) == {}  # no holder is invented or kept from before
        assert cycle.pod_gpus == {}
        assert cycle.value("kvscale_exporter_collector_success", collector="podresources") == 0.0
    log = child.log()
    assert cause in log
    assert log.count("GPU series go out without pod labels") == 1  # once per cause, not per cycle


def test_attribution_comes_back_with_the_kubelet(nvml_child: Any, kubelet: FakeKubelet) -> None:
    kubelet.pods = {("llm", "vllm-8b-0"): {"vllm": [("nvidia.com/gpu", [H100[5]])]}}
    kubelet.error = grpc.StatusCode.UNAVAILABLE
    child = nvml_child(socket=kubelet.socket)
    before = child.collect()
    assert pods_of(before) == {}
    kubelet.error = None
    cycle = child.collect()
    assert pods_of(cycle) == {"5": {("llm", "vllm-8b-0", "vllm")}}
    # The device series are the same series either way: only the info series came and went.
    assert {tuple(sorted(lab.items())) for lab, _ in before.of("kvscale_gpu_up")} == \
        {tuple(sorted(lab.items())) for lab, _ in cycle.of("kvscale_gpu_up")}
    assert cycle.value("kvscale_exporter_collector_success", collector="podresources") == 1.0
    assert "pod-resources answers again" in child.log()


def test_nvml_failure_still_publishes_pod_gpus(nvml_child: Any, kubelet: FakeKubelet) -> None:
    kubelet.pods = {("llm", "vllm-70b-0"): {"vllm": [("nvidia.com/gpu", H100[0:2])]}}
    child = nvml_child(socket=kubelet.socket)
    child.inject("fail_all")
    cycle = child.collect()
    assert not cycle.success
    assert cycle.pod_gpus == {("llm", "vllm-70b-0"): 2.0}  # the cost metric does not need NVML


def test_without_a_socket_there_is_no_attribution_health(nvml_child: Any) -> None:
    cycle = nvml_child(socket=None).collect()
    assert cycle.success
    assert not cycle.of("kvscale_exporter_collector_success")
    assert pods_of(cycle) == {}


def test_close_shuts_nvml_down(nvml_child: Any, kubelet: FakeKubelet) -> None:
    child = nvml_child(socket=kubelet.socket)
    child.collect()
    shutdown = child.control.with_name("control.shutdown")
    assert not shutdown.exists()
    assert child.close() == {"closed": True}
    assert child.proc.returncode == 0
    assert shutdown.exists()  # the fake library saw nvmlShutdown
