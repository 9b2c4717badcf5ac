"""Device IDs -> owners and GPU shares: whole GPUs, MIG, time-slicing, never double counted."""

from __future__ import annotations

import pytest

from exporter.gpu.attribution import Allocation, MigDevice, attribute, base_device, holdings, is_gpu_resource

GPU_A = "GPU-6513270e-269e-4d37-b2a7-4de452e6b438"
GPU_B = "GPU-d23f0824-128b-4f33-8c5c-7fd0a6a3a450"
MIG_1 = "MIG-8e81973e-0bec-47b0-b898-d190f9ebdacc"
MIG_2 = "MIG-6b4cb242-4a23-4596-a217-beaddbc496cb"
MIG_3 = "MIG-ae97ba94-d0ed-482f-8f6d-05584ef8aa38"
MIGS = {MIG_1: MigDevice(GPU_A, 0.125), MIG_2: MigDevice(GPU_A, 0.125), MIG_3: MigDevice(GPU_A, 0.5)}


def alloc(pod: str, *ids: str, resource: str = "nvidia.com/gpu", container: str = "vllm",
          namespace: str = "demo") -> Allocation:
    return Allocation(namespace, pod, container, resource, ids)


@pytest.mark.parametrize(("device_id", "base"), [
    (GPU_A, GPU_A),
    (f"{GPU_A}::0", GPU_A),          # NVIDIA device plugin time-slicing replica
    (f"{GPU_A}::12", GPU_A),
    (f"{GPU_A}/vgpu3", GPU_A),       # GKE time-sharing
    (f"{MIG_1}::1", MIG_1),          # MIG device shared by time-slicing
    (f" {GPU_A} ", GPU_A),
    (f"{GPU_A}::", f"{GPU_A}::"),    # not a replica suffix: left alone
])
def test_base_device(device_id: str, base: str) -> None:
    assert base_device(device_id) == base


@pytest.mark.parametrize(("resource", "counted"), [
    ("nvidia.com/gpu", True),
    ("nvidia.com/gpu.shared", True),  # time-slicing with renameByDefault
    ("nvidia.com/mig-1g.10gb", True),
    ("nvidia.com/mig-3g.40gb.shared", True),
    ("cpu", False),
    ("example.com/fpga", False),
    ("amd.com/gpu", False),
])
def test_gpu_resources(resource: str, counted: bool) -> None:
    assert is_gpu_resource(resource) is counted


def test_holdings_count_distinct_replicas_and_skip_other_resources() -> None:
    held = holdings([alloc("a", f"{GPU_A}::0", f"{GPU_A}::1", f"{GPU_A}::1"),
                     alloc("b", f"{GPU_A}::2"), alloc("b", "fpga-0", resource="example.com/fpga")])
    assert held == {GPU_A: {("demo", "a", "vllm"): 2, ("demo", "b", "vllm"): 1}}


@pytest.mark.parametrize(("allocations", "owners", "pod_gpus"), [
    pytest.param([alloc("a", GPU_A, GPU_B)],
                 {GPU_A: ("demo", "a", "vllm"), GPU_B: ("demo", "a", "vllm")}, {("demo", "a"): 2.0},
                 id="whole GPUs"),
    pytest.param([alloc("a", GPU_A), alloc("b", GPU_B, container="engine", namespace="prod")],
                 {GPU_A: ("demo", "a", "vllm"), GPU_B: ("prod", "b", "engine")},
                 {("demo", "a"): 1.0, ("prod", "b"): 1.0}, id="one GPU each"),
    pytest.param([alloc("a", f"{GPU_A}::0"), alloc("b", f"{GPU_A}::1")],
                 {}, {("demo", "a"): 0.5, ("demo", "b"): 0.5}, id="time-sliced between two pods"),
    pytest.param([alloc("a", f"{GPU_A}::0", f"{GPU_A}::3"), alloc("b", f"{GPU_A}::1")],
                 {}, {("demo", "a"): pytest.approx(2 / 3), ("demo", "b"): pytest.approx(1 / 3)},
                 id="time-sliced, unequal replicas"),
    pytest.param([alloc("a", f"{GPU_A}::0", f"{GPU_A}::1")],
                 {GPU_A: ("demo", "a", "vllm")}, {("demo", "a"): 1.0}, id="all replicas in one pod"),
    pytest.param([alloc("a", f"{GPU_A}::0", container="c1"), alloc("a", f"{GPU_A}::1", container="c2")],
                 {}, {("demo", "a"): 1.0}, id="two containers of one pod share a GPU"),
    pytest.param([alloc("a", MIG_1, resource="nvidia.com/mig-1g.10gb"),
                  alloc("b", MIG_3, resource="nvidia.com/mig-3g.40gb")],
                 {MIG_1: ("demo", "a", "vllm"), MIG_3: ("demo", "b", "vllm")},
                 {("demo", "a"): 0.125, ("demo", "b"): 0.5}, id="MIG devices of one GPU, two pods"),
    pytest.param([alloc("a", MIG_1, MIG_2, resource="nvidia.com/mig-1g.10gb")],
                 {MIG_1: ("demo", "a", "vllm"), MIG_2: ("demo", "a", "vllm"), GPU_A: ("demo", "a", "vllm")},
                 {("demo", "a"): 0.25}, id="MIG devices all in one pod: the board is the pod's"),
    pytest.param([alloc("a", f"{MIG_1}::0"), alloc("b", f"{MIG_1}::1")],
                 {}, {("demo", "a"): 0.0625, ("demo", "b"): 0.0625}, id="MIG device time-sliced"),
    pytest.param([alloc("a", GPU_A, resource="cpu")], {}, {}, id="not a GPU resource"),
    pytest.param([], {}, {}, id="nothing allocated"),
])
def test_attribute(allocations: list[Allocation], owners: dict[str, tuple[str, str, str]],
                   pod_gpus: dict[tuple[str, str], float]) -> None:
    result = attribute(allocations, mig=MIGS)
    assert result.owners == owners
    assert result.pod_gpus == pod_gpus
    assert result.unresolved == ()


@pytest.mark.parametrize("allocations", [
    [alloc("a", f"{GPU_A}::0"), alloc("b", f"{GPU_A}::1"), alloc("c", f"{GPU_A}::2", f"{GPU_A}::3")],
    [alloc("a", MIG_1), alloc("b", MIG_2), alloc("c", MIG_3), alloc("d", GPU_B)],
    [alloc("a", f"{MIG_3}::0"), alloc("b", f"{MIG_3}::1", f"{MIG_3}::2"), alloc("b", GPU_B)],
])
def test_shares_never_exceed_the_devices(allocations: list[Allocation]) -> None:
    result = attribute(allocations, mig=MIGS)
    devices = {base_device(i) for a in allocations for i in a.device_ids}
    expected = sum(MIGS[d].share if d in MIGS else 1.0 for d in devices)
    assert sum(result.pod_gpus.values()) == pytest.approx(expected)


def test_unknown_mig_device_is_unresolved_not_guessed() -> None:
    unknown = "MIG-00000000-0000-4000-8000-000000000000"
    result = attribute([alloc("a", unknown, GPU_B)], mig=MIGS)
    assert result.unresolved == (unknown,)
    assert result.pod_gpus == {("demo", "a"): 1.0}  # GPU_B only
    assert result.owners[unknown] == ("demo", "a", "vllm")  # its series (if any) still get labels
