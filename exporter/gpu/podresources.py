"""Client of the kubelet pod-resources API (v1 ``List``) on its unix socket.

The I/O half of attribution: one ``List`` call with a deadline, flattened to
:class:`~exporter.gpu.attribution.Allocation` rows (device plugins) and
:class:`~exporter.gpu.dra.ClaimDevice` rows (DRA claims, resolved later through ResourceSlices). Every failure is a
:class:`PodResourcesError` whose message tells the operator what to fix: dcgm-exporter's
most common complaint is empty pod labels with no hint why.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import Any

import grpc

from exporter.gpu import PodResourcesError
from exporter.gpu.attribution import Allocation
from exporter.gpu.dra import ClaimDevice

# The generated module is untyped (no protobuf stubs here): it is Any at this one boundary.
pb: Any = importlib.import_module("exporter.gpu.podresources_v1_pb2")
LIST_METHOD = "/v1.PodResourcesLister/List"
DEFAULT_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
_MAX_MESSAGE = 16 * 1024 * 1024  # a node with hundreds of pods outgrows gRPC's 4 MiB default
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    # A restarted kubelet recreates the socket: retry soon, not after minutes of backoff.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


@dataclass(frozen=True)
class Listing:
    """What the kubelet reported: device-plugin allocations and DRA claim devices."""

    allocations: list[Allocation] = field(default_factory=list)
    claims: list[ClaimDevice] = field(default_factory=list)


def claim_devices(response: Any) -> list[ClaimDevice]:
    """One row per device of each container's DRA claims (``dynamic_resources``)."""
    out: list[ClaimDevice] = []
    for pod in response.pod_resources:
        for container in pod.containers:
            for claim in container.dynamic_resources:
                for res in claim.claim_resources:
                    out.append(ClaimDevice(pod.namespace, pod.name, container.name, claim.claim_name, res.driver_name,
                                           res.pool_name, res.device_name,
                                           res.share_id if res.HasField("share_id") else ""))
    return out


def allocations(response: Any) -> list[Allocation]:
    """Flatten a ``ListPodResourcesResponse`` to one row per (container, resource)."""
    out: list[Allocation] = []
    for pod in response.pod_resources:
        for container in pod.containers:
            for devices in container.devices:
                out.append(Allocation(namespace=pod.namespace, pod=pod.name, container=container.name,
                                      resource=devices.resource_name, device_ids=tuple(devices.device_ids)))
    return out


class PodResourcesClient:
    """Lists device allocations; the channel is made lazily on the running event loop."""

    def __init__(self, *, socket_path: str = DEFAULT_SOCKET, timeout: float = 1.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._channel: grpc.aio.Channel | None = None

    async def list(self) -> Listing:
        if not os.path.exists(self.socket_path):
            raise PodResourcesError(
                f"pod-resources socket {self.socket_path} does not exist: mount the kubelet's "
                "/var/lib/kubelet/pod-resources directory (hostPath, read-only) into the exporter")
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(f"unix://{self.socket_path}", options=_CHANNEL_OPTIONS)
        call = self._channel.unary_unary(LIST_METHOD, request_serializer=pb.ListPodResourcesRequest.SerializeToString,
                                         response_deserializer=pb.ListPodResourcesResponse.FromString)
        try:
            response = await call(pb.ListPodResourcesRequest(), timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            await self.close()  # a fresh channel next time: no stale connection or backoff state
            raise PodResourcesError(_describe(exc, self.socket_path, self.timeout)) from exc
        return Listing(allocations(response), claim_devices(response))

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()


def _describe(exc: grpc.aio.AioRpcError, path: str, timeout: float) -> str:
    code = exc.code()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"pod-resources List on {path} took longer than {timeout:g}s"
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"pod-resources socket {path} is not answering (kubelet down or restarting?): {exc.details()}"
    if code == grpc.StatusCode.PERMISSION_DENIED or "permission denied" in (exc.details() or "").lower():
        return f"no permission on {path}: the exporter must run as root to read the kubelet socket"
    return f"pod-resources List on {path} failed: {code.name}: {exc.details()}"
