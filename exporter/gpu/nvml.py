"""NVML through pynvml: the GPU inventory, one reading per device, XID events.

Everything here blocks (ctypes calls into the driver), so the collector runs it in a
worker thread. Per-device failures stay per device: a GPU that raises is reported down
while the others keep reporting; only ``nvmlDeviceGetCount`` failing means NVML itself
is gone (:class:`NvmlFailure`). Queries a driver does not support are left out, once
logged, never invented.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pynvml

from exporter.gpu import NvmlFailure, NvmlUnavailable
from exporter.gpu.attribution import MigDevice
from exporter.gpu.health_read import read_health
from exporter.gpu.readings import DeviceRef, RawReading

log = logging.getLogger(__name__)

_NO_INSTANCE = 0xFFFFFFFF
_MAX_EVENTS_PER_READ = 1024  # an XID storm must not stall the cycle
_ABSENT = (pynvml.NVMLError_NotSupported, pynvml.NVMLError_FunctionNotFound)


@dataclass
class Device:
    """A physical GPU and, in MIG mode, its MIG devices."""

    ref: DeviceRef
    handle: Any
    address: int | None = None
    mig: list[tuple[DeviceRef, Any, int | None]] = field(default_factory=list)
    """(ref, handle, GPU instance id) per MIG device."""


@dataclass(frozen=True)
class NvmlReading:
    readings: list[RawReading]
    xids: list[tuple[str, int]]
    """(device UUID, XID) per event drained in this read, routed to the MIG device when known."""


def open_nvml(library_path: str | None = None) -> Nvml:
    """Initialise NVML; :class:`NvmlUnavailable` when the library or driver is missing."""
    if library_path:
        try:
            # Loaded by path first, pynvml's dlopen("libnvidia-ml.so.1") then finds it by soname.
            ctypes.CDLL(library_path)
        except OSError as exc:
            raise NvmlUnavailable(f"cannot load NVML from {library_path}: {exc}") from exc
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        raise NvmlUnavailable(f"nvmlInit failed: {exc}") from exc
    return Nvml()


class Nvml:
    """An initialised NVML session: discovers devices lazily, re-discovers when they change."""

    def __init__(self) -> None:
        self.devices: list[Device] = []
        self.mig_devices: dict[str, MigDevice] = {}
        self._stale = True
        self._events: Any = None
        self._warned: set[str] = set()
        self._down: dict[str, str] = {}

    def rediscover(self) -> None:
        """Discover the devices again at the next read (a MIG device appeared that NVML was not asked about)."""
        self._stale = True

    def gpu_count(self) -> int:
        try:
            return int(pynvml.nvmlDeviceGetCount())
        except pynvml.NVMLError as exc:
            raise NvmlFailure(f"nvmlDeviceGetCount failed: {exc}") from exc

    def read(self) -> NvmlReading:
        count = self.gpu_count()
        if self._stale or count != len(self.devices):
            self._discover(count)
        else:
            self._retry_missing()
        readings: list[RawReading] = []
        for device in self.devices:
            readings.extend(self._read_device(device))
        self._log_changes(readings)
        return NvmlReading(readings, self._drain_events())

    def _log_changes(self, readings: list[RawReading]) -> None:
        """Log a device going down (with the cause) or coming back, once per change."""
        for reading in readings:
            gpu, was = reading.ref.gpu, self._down.get(reading.ref.gpu)
            if reading.error is not None and reading.error != was:
                log.warning("GPU %s (%s) does not answer: %s", gpu, reading.ref.uuid or "uuid unknown", reading.error)
                self._down[gpu] = reading.error
            elif reading.error is None and was is not None:
                log.info("GPU %s (%s) answers again", gpu, reading.ref.uuid)
                del self._down[gpu]

    def shutdown(self) -> None:
        if self._events is not None:
            self._quiet(pynvml.nvmlEventSetFree, self._events)
            self._events = None
        self._quiet(pynvml.nvmlShutdown)

    # -- discovery -------------------------------------------------------------------

    def _discover(self, count: int) -> None:
        self._stale = False
        if self._events is not None:
            self._quiet(pynvml.nvmlEventSetFree, self._events)
        self._events = self._event_set()
        self.devices, self.mig_devices = [], {}
        for index in range(count):
            try:
                device = self._discover_gpu(index)
            except pynvml.NVMLError as exc:
                log.warning("GPU %d did not answer during discovery: %s", index, exc)
                device = Device(DeviceRef(str(index), "", ""), None)  # retried each cycle: it may come back
            self.devices.append(device)

    def _retry_missing(self) -> None:
        for index, device in enumerate(self.devices):
            if device.handle is None:
                try:
                    self.devices[index] = self._discover_gpu(index)
                except pynvml.NVMLError as exc:
                    log.debug("GPU %d still does not answer: %s", index, exc)

    def _discover_gpu(self, index: int) -> Device:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        ref = DeviceRef(str(index), str(pynvml.nvmlDeviceGetUUID(handle)), str(pynvml.nvmlDeviceGetName(handle)))
        device = Device(ref, handle, ctypes.cast(handle, ctypes.c_void_p).value)
        mig_mode = self._optional(pynvml.nvmlDeviceGetMigMode, handle)
        if mig_mode is not None and mig_mode[0] == pynvml.NVML_DEVICE_MIG_ENABLE:
            total = float(pynvml.nvmlDeviceGetMemoryInfo(handle).total)
            for slot in range(pynvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
                try:
                    mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
                except pynvml.NVMLError_NotFound:
                    continue  # an unused slot
                gi: int | None = self._optional(pynvml.nvmlDeviceGetGpuInstanceId, mig)
                mig_ref = DeviceRef(f"{index}/{gi if gi is not None else 'mig' + str(slot)}",
                                    str(pynvml.nvmlDeviceGetUUID(mig)), str(pynvml.nvmlDeviceGetName(mig)),
                                    parent_uuid=ref.uuid)
                device.mig.append((mig_ref, mig, gi))
                mig_total = float(pynvml.nvmlDeviceGetMemoryInfo(mig).total)
                self.mig_devices[mig_ref.uuid] = MigDevice(ref.uuid, mig_total / total if total else 0.0)
        if self._events is not None:
            try:
                pynvml.nvmlDeviceRegisterEvents(handle, pynvml.nvmlEventTypeXidCriticalError, self._events)
            except pynvml.NVMLError as exc:
                log.warning("GPU %d: XID events not available: %s", index, exc)
        return device

    def _event_set(self) -> Any:
        try:
            return pynvml.nvmlEventSetCreate()
        except pynvml.NVMLError as exc:
            self._warn_once("events", "XID events are not available from this driver (%s): "
                            "kvscale_gpu_xid_errors_total will be absent", exc)
            return None

    # -- reading ---------------------------------------------------------------------

    def _read_device(self, device: Device) -> list[RawReading]:
        h = device.handle
        if h is None:
            return [RawReading(device.ref, error="did not answer during discovery")]
        try:
            # In MIG mode the MIG devices carry the memory: the board's would count it twice.
            memory = None if device.mig else self._optional(pynvml.nvmlDeviceGetMemoryInfo, h)
            util = self._optional(pynvml.nvmlDeviceGetUtilizationRates, h)
            reading = RawReading(
                device.ref,
                utilization_percent=float(util.gpu) if util is not None else None,
                memory_used_bytes=float(memory.used) if memory is not None else None,
                memory_total_bytes=float(memory.total) if memory is not None else None,
                power_milliwatts=self._optional(pynvml.nvmlDeviceGetPowerUsage, h),
                temperature_celsius=self._optional(pynvml.nvmlDeviceGetTemperature, h, pynvml.NVML_TEMPERATURE_GPU),
                sm_clock_mhz=self._optional(pynvml.nvmlDeviceGetClockInfo, h, pynvml.NVML_CLOCK_SM),
                health=read_health(h, device=device.ref.gpu, warn_once=self._warn_key),
            )
        except pynvml.NVMLError as exc:
            return [RawReading(device.ref, error=str(exc)), *(RawReading(ref, error=str(exc))
                                                              for ref, _, _ in device.mig)]
        return [reading, *(self._read_mig(ref, handle) for ref, handle, _ in device.mig)]

    def _read_mig(self, ref: DeviceRef, handle: Any) -> RawReading:
        try:
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        except (pynvml.NVMLError_NotFound, pynvml.NVMLError_InvalidArgument) as exc:
            self._stale = True  # MIG was re-partitioned: discover again next cycle
            return RawReading(ref, error=str(exc))
        except pynvml.NVMLError as exc:
            return RawReading(ref, error=str(exc))
        return RawReading(ref, memory_used_bytes=float(memory.used), memory_total_bytes=float(memory.total))

    def _drain_events(self) -> list[tuple[str, int]]:
        if self._events is None:
            return []
        out: list[tuple[str, int]] = []
        by_address: dict[int | None, Device] = {d.address: d for d in self.devices if d.address is not None}
        for _ in range(_MAX_EVENTS_PER_READ):
            try:
                event = pynvml.nvmlEventSetWait_v2(self._events, 0)
            except pynvml.NVMLError_Timeout:
                break  # drained
            except pynvml.NVMLError_FunctionNotFound as exc:
                self._quiet(pynvml.nvmlEventSetFree, self._events)
                self._events = None
                self._warn_once("events", "XID events are not available from this driver (%s): "
                                "kvscale_gpu_xid_errors_total will be absent", exc)
                break
            except pynvml.NVMLError as exc:
                self._warn_once("wait", "reading XID events failed: %s", exc)
                break
            device = by_address.get(ctypes.cast(event.device, ctypes.c_void_p).value)
            if device is None:
                continue
            uuid = device.ref.uuid
            if event.gpuInstanceId != _NO_INSTANCE:
                uuid = next((ref.uuid for ref, _, gi in device.mig if gi == event.gpuInstanceId), uuid)
            out.append((uuid, int(event.eventData)))
        return out

    # -- helpers ---------------------------------------------------------------------

    def _optional(self, call: Callable[..., Any], *args: Any) -> Any:
        """The call's answer, or None where the GPU or driver does not support the query."""
        try:
            return call(*args)
        except _ABSENT as exc:
            if isinstance(exc, pynvml.NVMLError_FunctionNotFound):
                name = getattr(call, "__name__", repr(call))
                self._warn_once(name, "%s is missing from this driver's NVML: its series are left out", name)
            return None

    def _warn_key(self, key: str, message: str) -> None:
        self._warn_once(key, "%s", message)

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    @staticmethod
    def _quiet(call: Callable[..., Any], *args: Any) -> None:
        try:
            call(*args)
        except pynvml.NVMLError as exc:
            log.debug("%s failed: %s", getattr(call, "__name__", call), exc)
