"""The exporter's GPU half: NVML readings and XID events, attributed to pods via the kubelet.

This module is the package's boundary: ``build_collector``, the one entry point the
exporter process calls, and the exceptions that cross it. See docs/gpu.md for what the
series mean under MIG and time-slicing.
"""

from __future__ import annotations

import logging
from typing import Literal

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


def build_collector(*, mode: Literal["auto", "on", "off"], node_name: str, pod_resources_socket: str | None,
                    library_path: str | None = None) -> Collector | None:
    """The GPU collector, or None when GPUs are off (or absent under ``auto``).

    NVML is initialised here, once; the collector's async ``close()`` shuts it down.
    ``mode="on"`` without a usable NVML raises :class:`GpuSetupError` (a startup error).
    An empty or None ``pod_resources_socket`` turns attribution off.
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
    log.info("NVML ready: %d GPUs; pod attribution %s", count,
             f"through {pod_resources_socket}" if client else "off")
    return GpuCollector(nvml=nvml, node_name=node_name, pod_resources=client)
