"""A fake kubelet for tests: a real gRPC server on a unix socket serving pod-resources v1 List.

Tests set the pods it reports (device-plugin devices, and DRA claims under ``dynamic_resources``),
a delay (a slow kubelet) or an error status (a failing one).
"""

from __future__ import annotations

import importlib
import tempfile
import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

# Generated modules are untyped: Any at this boundary, as in exporter/gpu/podresources.py.
pb: Any = importlib.import_module("exporter.gpu.podresources_v1_pb2")
pb_grpc: Any = importlib.import_module("exporter.gpu.podresources_v1_pb2_grpc")

Pods = dict[tuple[str, str], dict[str, list[tuple[str, list[str]]]]]
"""(namespace, pod) -> container -> [(resource name, device IDs)]."""
Claim = tuple[str, str, str, str, str | None]
"""(claim name, driver, pool, device, share_id or None): one device of a DRA claim."""
Claims = dict[tuple[str, str], dict[str, list[Claim]]]
"""(namespace, pod) -> container -> its claims' devices."""


def response(pods: Pods, claims: Claims | None = None) -> Any:
    msg = pb.ListPodResourcesResponse()
    claims = claims or {}
    for key in [*pods, *(k for k in claims if k not in pods)]:
        namespace, name = key
        pod = msg.pod_resources.add(name=name, namespace=namespace)
        containers = pods.get(key, {})
        for container_name in [*containers, *(c for c in claims.get(key, {}) if c not in containers)]:
            container = pod.containers.add(name=container_name, cpu_ids=[0, 1])
            for resource, ids in containers.get(container_name, []):
                dev = container.devices.add(resource_name=resource, device_ids=ids)
                dev.topology.nodes.add(ID=0)
            for claim_name, driver, pool, device, share_id in claims.get(key, {}).get(container_name, []):
                dynamic = container.dynamic_resources.add(claim_name=claim_name, claim_namespace=namespace)
                res = dynamic.claim_resources.add(driver_name=driver, pool_name=pool, device_name=device)
                res.cdi_devices.add(name=f"k8s.{driver}/claim={claim_name}-{device}")
                if share_id is not None:
                    res.share_id = share_id
    return msg


class _Servicer:
    def __init__(self, kubelet: FakeKubelet) -> None:
        self.kubelet = kubelet

    def List(self, request: Any, context: grpc.ServicerContext) -> Any:
        kubelet = self.kubelet
        kubelet.calls += 1
        if kubelet.delay:
            kubelet.stopping.wait(kubelet.delay)  # a slow kubelet; released at teardown
        if kubelet.error is not None:
            context.abort(kubelet.error, "injected failure")
        return response(kubelet.pods, kubelet.claims)


class FakeKubelet:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="kvs-kubelet-"))  # short: unix socket paths max 107 bytes
        self.socket = str(self.dir / "kubelet.sock")
        self.pods: Pods = {}
        self.claims: Claims = {}
        self.delay = 0.0
        self.error: grpc.StatusCode | None = None
        self.calls = 0
        self.stopping = threading.Event()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_PodResourcesListerServicer_to_server(_Servicer(self), self.server)
        self.server.add_insecure_port(f"unix://{self.socket}")
        self.server.start()

    def stop(self) -> None:
        self.stopping.set()
        self.server.stop(grace=None).wait(10)
