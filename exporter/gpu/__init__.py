"""The exporter's GPU half: NVML readings and XID events, attributed to pods via the kubelet.

This module is the package's boundary: ``build_collector``, the one entry point the
exporter process calls, and the exceptions that cross it. See docs/gpu.md for what the
series mean under MIG and time-slicing.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Literal

from exporter.collector import Collector, CollectorError

__all__ = ["GpuError", "GpuSetupError", "NvmlFailure", "NvmlUnavailable", "PodResourcesError", "build_collector"]

log = logging.getLogger(__name__)


# One hierarchy for the GPU half, a branch per boundary (NVML, kubelet). Every class is a
# CollectorError, so one escaping ``collect`` is recorded by the runner as ``success 0``.
class GpuError(CollectorError):
    """Root of the GPU collector's errors."""


class GpuSetupError(GpuError):
    """``--nvml on`` cannot be honoured (no NVML library, driver not loaded); raised at startup."""


class NvmlUnavailable(GpuError):
    """NVML cannot be initialised on this host: the library or the driver is missing."""


class NvmlFailure(GpuError):
    """NVML failed as a whole during a collection (not one GPU: the library or driver)."""


class PodResourcesError(GpuError):
    """The kubelet pod-resources API could not be listed (socket missing, slow or failing)."""


POD_RESOURCES_TIMEOUT = 1.0
"""Deadline of one pod-resources ``List``; the kubelet answers in milliseconds when healthy."""


Mode = Literal["auto", "on", "off"]


def build_collector(*, mode: Mode, node_name: str, pod_resources_socket: str | None,
                    library_path: str | None = None, dra: Mode = "off", kube_api: Any = None) -> Collector | None:
    """The GPU collector, or None when GPUs are off (or absent under ``auto``).

    NVML is initialised here, once; the collector's async ``close()`` shuts it down.
    ``mode="on"`` without a usable NVML raises :class:`GpuSetupError` (a startup error).
    An empty or None ``pod_resources_socket`` turns attribution off. ``dra`` attributes DRA
    claims through this node's ResourceSlices (``auto``: when running in a cluster);
    ``kube_api`` is the ``kubernetes`` ApiClient to use (default: in-cluster or kubeconfig).
    """
    if mode == "off":
        return None
    from exporter.gpu.nvml import open_nvml  # pynvml and grpc load only when GPUs are wanted

    try:
        nvml = open_nvml(library_path)
        count = nvml.gpu_count()
    except (NvmlUnavailable, NvmlFailure) as exc:
        if mode == "on":
            raise GpuSetupError(f"--nvml on, but NVML is unavailable: {exc}") from exc
        log.info("NVML is not available on this node (%s): running vLLM-only, without GPU metrics", exc)
        return None
    from exporter.gpu.collector import GpuCollector
    from exporter.gpu.podresources import PodResourcesClient

    client = (PodResourcesClient(socket_path=pod_resources_socket, timeout=POD_RESOURCES_TIMEOUT)
              if pod_resources_socket else None)
    try:
        slices = _slice_watch(dra, node_name, kube_api) if client else None
    except GpuSetupError:
        nvml.shutdown()
        raise
    log.info("NVML ready: %d GPUs; pod attribution %s%s", count, f"through {pod_resources_socket}" if client else "off",
             ", DRA claims through ResourceSlices" if slices else "")
    return GpuCollector(nvml=nvml, node_name=node_name, pod_resources=client, dra=slices)


def _slice_watch(dra: Mode, node_name: str, kube_api: Any) -> Any:
    """The started ResourceSlice watch, or None when DRA attribution is off (or unavailable under auto)."""
    if dra == "off" or (dra == "auto" and kube_api is None and not os.environ.get("KUBERNETES_SERVICE_HOST")):
        return None
    from exporter.contract.kube_events import KubeSourceError
    from exporter.contract.kubewatch import api_client
    from exporter.gpu.dra_watch import SliceWatch

    if not node_name:
        if dra == "on":
            raise GpuSetupError("--dra on needs --node-name (the ResourceSlices are selected by node)")
        log.info("DRA attribution off: no --node-name")
        return None
    try:
        api = kube_api if kube_api is not None else api_client()
    except KubeSourceError as exc:
        if dra == "on":
            raise GpuSetupError(f"--dra on, but the Kubernetes API is unavailable: {exc}") from exc
        log.info("DRA attribution off: %s", exc)
        return None
    return SliceWatch(api=api, node_name=node_name).start()
