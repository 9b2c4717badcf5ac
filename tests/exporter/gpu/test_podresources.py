"""The pod-resources client against a real gRPC server on a unix socket (the v1 proto)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from exporter.collector import CollectorError
from exporter.gpu import PodResourcesError
from exporter.gpu.attribution import Allocation
from exporter.gpu.dra import ClaimDevice
from exporter.gpu.podresources import Listing, PodResourcesClient, allocations, claim_devices
from tests.exporter.gpu.kubelet import FakeKubelet, response

GPU_A = "GPU-6513270e-269e-4d37-b2a7-4de452e6b438"
PODS = {
    ("demo", "vllm-a"): {"vllm": [("nvidia.com/gpu", [GPU_A]), ("example.com/nic", ["nic0"])],
                         "sidecar": []},
    ("prod", "vllm-b"): {"engine": [("nvidia.com/mig-1g.10gb", ["MIG-1", "MIG-2"])]},
}


def test_allocations_flatten_one_row_per_container_resource() -> None:
    assert allocations(response(PODS)) == [
        Allocation("demo", "vllm-a", "vllm", "nvidia.com/gpu", (GPU_A,)),
        Allocation("demo", "vllm-a", "vllm", "example.com/nic", ("nic0",)),
        Allocation("prod", "vllm-b", "engine", "nvidia.com/mig-1g.10gb", ("MIG-1", "MIG-2")),
    ]


async def test_list_reads_the_kubelet(kubelet: FakeKubelet) -> None:
    kubelet.pods = PODS
    client = PodResourcesClient(socket_path=kubelet.socket, timeout=10)
    try:
        rows = await client.list()
        kubelet.pods = {}
        assert await client.list() == Listing()
    finally:
        await client.close()
    assert rows == Listing(allocations(response(PODS)), [])
    assert kubelet.calls == 2


async def test_missing_socket_says_what_to_mount(tmp_path: Path) -> None:
    client = PodResourcesClient(socket_path=str(tmp_path / "kubelet.sock"))
    with pytest.raises(PodResourcesError, match="does not exist: mount") as info:
        await client.list()
    assert isinstance(info.value, CollectorError)


async def test_slow_kubelet_hits_the_deadline(kubelet: FakeKubelet) -> None:
    kubelet.delay = 30.0
    client = PodResourcesClient(socket_path=kubelet.socket, timeout=0.2)
    try:
        with pytest.raises(PodResourcesError, match=r"took longer than 0\.2s") as info:
            await client.list()
    finally:
        await client.close()
    assert isinstance(info.value.__cause__, grpc.aio.AioRpcError)


async def test_erroring_kubelet_and_recovery(kubelet: FakeKubelet) -> None:
    kubelet.error = grpc.StatusCode.INTERNAL
    kubelet.pods = PODS
    client = PodResourcesClient(socket_path=kubelet.socket, timeout=10)
    try:
        with pytest.raises(PodResourcesError, match="INTERNAL: injected failure"):
            await client.list()
        kubelet.error = None
        assert len((await client.list()).allocations) == 3  # a fresh channel after the failure
    finally:
        await client.close()


async def test_stale_socket_file_is_unavailable(tmp_path: Path) -> None:
    stale = tmp_path / "kubelet.sock"
    stale.write_text("")  # a socket path left behind by a stopped kubelet
    client = PodResourcesClient(socket_path=str(stale), timeout=5)
    try:
        with pytest.raises(PodResourcesError, match="not answering"):
            await client.list()
    finally:
        await client.close()


async def test_dra_claims_come_through_the_real_proto(kubelet: FakeKubelet) -> None:
    kubelet.pods = {("demo", "vllm-a"): {"vllm": [("nvidia.com/gpu", [GPU_A])]}}
    kubelet.claims = {("demo", "vllm-a"): {"vllm": [("gpu-claim", "gpu.nvidia.com", "node-a", "gpu-1", None)]},
                      ("demo", "vllm-b"): {"engine": [("shared", "gpu.nvidia.com", "node-a", "gpu-2", "4f1c")]}}
    client = PodResourcesClient(socket_path=kubelet.socket, timeout=10)
    try:
        listing = await client.list()
    finally:
        await client.close()
    assert listing.allocations == [Allocation("demo", "vllm-a", "vllm", "nvidia.com/gpu", (GPU_A,))]
    assert listing.claims == [
        ClaimDevice("demo", "vllm-a", "vllm", "gpu-claim", "gpu.nvidia.com", "node-a", "gpu-1", ""),
        ClaimDevice("demo", "vllm-b", "engine", "shared", "gpu.nvidia.com", "node-a", "gpu-2", "4f1c"),
    ]
    assert claim_devices(response({})) == []
