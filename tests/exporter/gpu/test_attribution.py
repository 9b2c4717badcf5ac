"""Device IDs -> owners and GPU shares: whole GPUs, MIG, time-slicing, never double counted."""

from __future__ import annotations

import pytest

from exporter.gpu.attribution import Allocation, MigDevice, attribute, base_device, holdings, is_gpu_resource
from exporter.gpu.readings import Holder

GPU_A = "GPU-6513270e-269e-4d37-b2a7-4de452e6b438"
GPU_B = "GPU-d23f0824-128b-4f33-8c5c-7fd0a6a3a450"
MIG_1 = "MIG-8e81973e-0bec-47b0-b898-d190f9ebdacc"
MIG_2 = "MIG-6b4cb242-4a23-4596-a217-beaddbc496cb"
MIG_3 = "MIG-ae97ba94-d0ed-482f-8f6d-05584ef8aa38"
MIGS = {MIG_1: MigDevice(GPU_A, 0.125), MIG_2: MigDevice(GPU_A, 0.125), MIG_3: MigDevice(GPU_A, 0.5)}


def alloc(pod: str, *ids: str, resource: str = "nvidia.com/gpu", container: str = "vllm",
          namespace: str = "demo", claim: str = "") -> Allocation:
    return Allocation(namespace, pod, container, resource, ids, claim=claim)


def held(pod: str, resource: str = "nvidia.com/gpu", container: str = "vllm", namespace: str = "demo",
         claim: str = "") -> Holder:
    return Holder(namespace, pod, container, resource, claim)


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


P = "nvidia.com/gpu"
M1, M3 = "nvidia.com/mig-1g.10gb", "nvidia.com/mig-3g.40gb"


@pytest.mark.parametrize(("allocations", "holders", "pod_gpus"), [
    pytest.param([alloc("a", GPU_A, GPU_B)],
                 {GPU_A: (held("a"),), GPU_B: (held("a"),)}, {("demo", "a"): 2.0}, id="whole GPUs"),
    pytest.param([alloc("a", GPU_A), alloc("b", GPU_B, container="engine", namespace="prod")],
                 {GPU_A: (held("a"),), GPU_B: (held("b", container="engine", namespace="prod"),)},
                 {("demo", "a"): 1.0, ("prod", "b"): 1.0}, id="one GPU each"),
    pytest.param([alloc("a", f"{GPU_A}::0"), alloc("b", f"{GPU_A}::1")],
                 {GPU_A: (held("a"), held("b"))}, {("demo", "a"): 0.5, ("demo", "b"): 0.5},
                 id="time-sliced between two pods: both hold it"),
    pytest.param([alloc("a", f"{GPU_A}::0", f"{GPU_A}::3"), alloc("b", f"{GPU_A}::1")],
                 {GPU_A: (held("a"), held("b"))},
                 {("demo", "a"): pytest.approx(2 / 3), ("demo", "b"): pytest.approx(1 / 3)},
                 id="time-sliced, unequal replicas"),
    pytest.param([alloc("a", f"{GPU_A}::0", f"{GPU_A}::1")],
                 {GPU_A: (held("a"),)}, {("demo", "a"): 1.0}, id="all replicas in one pod"),
    pytest.param([alloc("a", f"{GPU_A}::0", container="c1"), alloc("a", f"{GPU_A}::1", container="c2")],
                 {GPU_A: (held("a", container="c1"), held("a", container="c2"))}, {("demo", "a"): 1.0},
                 id="two containers of one pod share a GPU"),
    pytest.param([alloc("a", MIG_1, resource=M1), alloc("b", MIG_3, resource=M3)],
                 {MIG_1: (held("a", M1),), MIG_3: (held("b", M3),)},
                 {("demo", "a"): 0.125, ("demo", "b"): 0.5}, id="MIG devices of one GPU, two pods"),
    pytest.param([alloc("a", MIG_1, MIG_2, resource=M1)],
                 {MIG_1: (held("a", M1),), MIG_2: (held("a", M1),)},
                 {("demo", "a"): 0.25}, id="MIG devices all in one pod: the board has no holder of its own"),
    pytest.param([alloc("a", f"{MIG_1}::0"), alloc("b", f"{MIG_1}::1")],
                 {MIG_1: (held("a"), held("b"))}, {("demo", "a"): 0.0625, ("demo", "b"): 0.0625},
                 id="MIG device time-sliced"),
    pytest.param([alloc("a", GPU_A, resource="cpu")], {}, {}, id="not a GPU resource"),
    pytest.param([alloc("a", GPU_A, resource="gpu.nvidia.com", claim="c1")],
                 {GPU_A: (held("a", "gpu.nvidia.com", claim="c1"),)}, {("demo", "a"): 1.0},
                 id="a DRA claim (already resolved to a UUID)"),
    pytest.param([alloc("a", GPU_A), alloc("a", GPU_A, resource="gpu.nvidia.com", claim="c1")],
                 {GPU_A: (held("a", "gpu.nvidia.com", claim="c1"),)}, {("demo", "a"): 1.0},
                 id="device plugin and DRA claim name one device: held once, as the claim"),
    pytest.param([alloc("a", GPU_A, resource="gpu.nvidia.com", claim="shared"),
                  alloc("b", GPU_A, resource="gpu.nvidia.com", claim="shared")],
                 {GPU_A: (held("a", "gpu.nvidia.com", claim="shared"), held("b", "gpu.nvidia.com", claim="shared"))},
                 {("demo", "a"): 0.5, ("demo", "b"): 0.5}, id="one claim shared by two pods"),
    pytest.param([], {}, {}, id="nothing allocated"),
])
def test_attribute(allocations: list[Allocation], holders: dict[str, tuple[Holder, ...]],
                   pod_gpus: dict[tuple[str, str], float]) -> None:
    result = attribute(allocations, mig=MIGS)
    assert result.holders == holders
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
    assert result.holders[unknown] == (held("a"),)  # its holder is still published
