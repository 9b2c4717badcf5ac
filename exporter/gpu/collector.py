"""The GPU collector: NVML readings and pod attribution, joined into one cycle's series.

NVML runs in a worker thread while the pod-resources ``List`` runs on the event loop,
so one cycle costs the slower of the two, not their sum. The two halves fail
separately: without pod-resources the GPU series keep flowing unlabelled (and
``collector_success{collector="podresources"}`` says why); without NVML the cycle
fails, but the pods' GPU counts for the cost metric are still published.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from exporter.collector import CycleContext, Series
from exporter.gpu import NvmlFailure, PodResourcesError
from exporter.gpu.attribution import Allocation, Attribution, attribute
from exporter.gpu.dra import DeviceKey, SliceDevice, resolve
from exporter.gpu.nvml import Nvml, NvmlReading
from exporter.gpu.podresources import Listing, PodResourcesClient
from exporter.gpu.readings import allocation_series, gpu_series

log = logging.getLogger(__name__)

PODRESOURCES = "podresources"


class DraSource(Protocol):
    """This node's ResourceSlice devices and pod UIDs (``exporter.gpu.dra_watch.SliceWatch``)."""

    def devices(self) -> Mapping[DeviceKey, SliceDevice]: ...

    def pod_uids(self) -> Mapping[tuple[str, str], str]: ...

    def stop(self) -> None: ...


class GpuCollector:
    """``exporter.collector.Collector`` over NVML plus the kubelet's device allocations."""

    name = "nvml"

    def __init__(self, *, nvml: Nvml, node_name: str, pod_resources: PodResourcesClient | None,
                 dra: DraSource | None = None) -> None:
        self._nvml = nvml
        self._node = node_name
        self._pod_resources = pod_resources
        self._dra = dra
        self._unresolved_claims: frozenset[str] = frozenset()
        # (device UUID, XID) -> events since start. Kept while a device is down (a counter's history
        # is not lost because the GPU stopped answering); dropped only when the device leaves NVML's
        # inventory (a MIG device removed by re-partitioning), so the dict stays bounded.
        self._xids: dict[tuple[str, int], int] = {}
        # Held while a worker thread is inside NVML; a hung driver call keeps it, and later
        # cycles fail fast instead of piling up threads behind it.
        self._busy = threading.Lock()
        self._last_error: str | None = None
        self._asked: set[str] = set()

    async def collect(self, ctx: CycleContext) -> Sequence[Series]:
        reading_task = asyncio.ensure_future(asyncio.to_thread(self._read))
        try:
            allocations, health = await self._allocations()
        except asyncio.CancelledError:
            reading_task.cancel()  # a thread already in NVML runs on and frees the lock itself
            raise
        try:
            reading: NvmlReading | None = await reading_task
            failure: NvmlFailure | None = None
        except NvmlFailure as exc:
            reading, failure = None, exc
        attribution = attribute(allocations, mig=self._nvml.mig_devices) if allocations is not None else Attribution()
        if attribution.unresolved:
            # A MIG device created after discovery (DRA creates them on demand): look again next cycle.
            # Once per new UUID: re-discovery re-creates the event set, which must not happen every cycle.
            log.debug("MIG devices allocated to pods but unknown to NVML: %s", ", ".join(attribution.unresolved))
            if not self._asked.issuperset(attribution.unresolved):
                self._nvml.rediscover()
        self._asked = set(attribution.unresolved)
        for pod, share in attribution.pod_gpus.items():
            # Fractional under MIG and time-slicing (see attribution.py).
            ctx.pod_gpus[pod] = share
        if failure is not None or reading is None:
            raise failure or NvmlFailure("no NVML reading")
        for event in reading.xids:
            self._xids[event] = self._xids.get(event, 0) + 1
        known = {r.ref.uuid for r in reading.readings}
        for event in [e for e in self._xids if e[0] not in known]:
            del self._xids[event]
        series = gpu_series(reading.readings, node=self._node, xids=self._xids)
        holders = allocation_series(attribution.holders, [r.ref for r in reading.readings], node=self._node,
                                    pod_uids=self._dra.pod_uids() if self._dra is not None else {})
        return [*series, *holders, *health]

    def _read(self) -> NvmlReading:
        # Taken in the worker thread, so a read that never started cannot leave it held.
        if not self._busy.acquire(blocking=False):
            raise NvmlFailure("the previous NVML read has not returned (driver hung?): skipping this cycle")
        try:
            return self._nvml.read()
        finally:
            self._busy.release()

    def _with_claims(self, listing: Listing) -> list[Allocation]:
        """Device-plugin allocations plus the DRA claim devices the node's ResourceSlices resolve."""
        if self._dra is None or not listing.claims:
            return listing.allocations
        resolved, unresolved = resolve(listing.claims, self._dra.devices())
        names = frozenset(f"{c.namespace}/{c.pod} claim {c.claim}: {c.driver}/{c.pool}/{c.device}" for c in unresolved)
        if names - self._unresolved_claims:  # once per new device: its slice may just not have arrived yet
            log.info("DRA devices not (yet) in this node's ResourceSlices, left unattributed: %s",
                     ", ".join(sorted(names - self._unresolved_claims)))
        self._unresolved_claims = names
        return [*listing.allocations, *resolved]

    async def _allocations(self) -> tuple[list[Allocation] | None, list[Series]]:
        """The kubelet's GPU allocations (None when unavailable) and the attribution health series."""
        if self._pod_resources is None:
            return None, []
        started = time.perf_counter()
        allocations: list[Allocation] | None
        try:
            allocations = self._with_claims(await self._pod_resources.list())
        except PodResourcesError as exc:
            allocations = None
            if str(exc) != self._last_error:  # log a cause once, not every cycle
                log.warning("GPU series go out without pod labels: %s", exc)
            self._last_error = str(exc)
        else:
            if self._last_error is not None:
                log.info("pod-resources answers again: GPU series are attributed to pods")
            self._last_error = None
        labels = {"collector": PODRESOURCES}
        return allocations, [
            Series("kvscale_exporter_collector_success", labels, 0.0 if allocations is None else 1.0),
            Series("kvscale_exporter_collector_duration_seconds", labels, time.perf_counter() - started),
        ]

    async def close(self) -> None:
        """Release the gRPC channel and shut NVML down (skipped if a driver call is hung)."""
        if self._pod_resources is not None:
            await self._pod_resources.close()
        if self._dra is not None:
            await asyncio.to_thread(self._dra.stop)  # joins the watch threads
        if self._busy.acquire(blocking=False):
            try:
                self._nvml.shutdown()
            finally:
                self._busy.release()
