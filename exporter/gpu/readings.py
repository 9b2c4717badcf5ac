"""Pure projection of NVML readings onto the catalog's GPU families.

NVML answers in its own units (percent, milliwatts, megahertz); the catalog wants base
units and ratios, so the conversion lives here, next to the table that names the
families. A device that raised is ``kvscale_gpu_up 0`` and its XID counters: a lost GPU
never keeps reporting its last readings, but a counter's history is not lost because
the device stopped answering. Device series carry the device's identity only; who
holds a device is ``kvscale_gpu_allocation_info``, joined in PromQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from exporter.collector import Series
from exporter.contract.catalog import family
from exporter.gpu.health import HealthReading, health_series

Owner = tuple[str, str, str]
"""(namespace, pod, container) holding a device."""


@dataclass(frozen=True, slots=True, order=True)
class Holder:
    """One container holding a device, and how it got it."""

    namespace: str
    pod: str
    container: str
    resource: str = ""
    """The device plugin's resource (``nvidia.com/gpu``) or the DRA driver (``gpu.nvidia.com``)."""
    claim: str = ""
    """The DRA ResourceClaim's name; "" for a device plugin."""


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """Identity of one NVML device: a whole GPU, or one MIG device of a GPU."""

    gpu: str
    """The ``gpu`` label: the NVML index ("3"), or "INDEX/GI" for a MIG device's GPU instance."""
    uuid: str
    model: str
    parent_uuid: str | None = None
    """The physical GPU's UUID when this is a MIG device."""


@dataclass(frozen=True, slots=True)
class RawReading:
    """One device's answers in NVML units; None where NVML does not support the query."""

    ref: DeviceRef
    error: str | None = None
    """Why the device did not answer (GPU lost, unknown error): it is reported as down."""
    utilization_percent: float | None = None
    memory_used_bytes: float | None = None
    memory_total_bytes: float | None = None
    power_milliwatts: float | None = None
    temperature_celsius: float | None = None
    sm_clock_mhz: float | None = None
    health: HealthReading | None = None
    """ECC, clock events, retired pages, remapped rows, PCIe replays (whole GPUs only)."""


# (family, RawReading field, multiplier, divisor) to the catalog's base unit; dividing by
# 100 rather than multiplying by 0.01 keeps 95 % exactly 0.95.
_GAUGES: tuple[tuple[str, str, float, float], ...] = (
    ("kvscale_gpu_utilization_ratio", "utilization_percent", 1.0, 100.0),
    ("kvscale_gpu_memory_used_bytes", "memory_used_bytes", 1.0, 1.0),
    ("kvscale_gpu_memory_total_bytes", "memory_total_bytes", 1.0, 1.0),
    ("kvscale_gpu_power_watts", "power_milliwatts", 1.0, 1000.0),
    ("kvscale_gpu_temperature_celsius", "temperature_celsius", 1.0, 1.0),
    ("kvscale_gpu_sm_clock_hertz", "sm_clock_mhz", 1e6, 1.0),
)
for _name in (*(g[0] for g in _GAUGES), "kvscale_gpu_allocation_info"):
    family(_name)  # a renamed catalog family fails at import, not at the first scrape


def device_labels(ref: DeviceRef, *, node: str) -> dict[str, str]:
    return {"node": node, "gpu": ref.gpu, "uuid": ref.uuid, "gpu_model": ref.model}


def device_series(reading: RawReading, *, node: str, xids: Mapping[int, int] | None = None) -> list[Series]:
    """The series of one device: ``up``, each supported gauge while it answers, and its XID counters."""
    labels = device_labels(reading.ref, node=node)
    out = [Series("kvscale_gpu_up", labels, 0.0 if reading.error is not None else 1.0)]
    if reading.error is None:
        for name, attr, multiplier, divisor in _GAUGES:
            value = getattr(reading, attr)
            if value is not None:
                out.append(Series(name, labels, float(value) * multiplier / divisor))
        if reading.health is not None:
            out.extend(health_series(reading.health, labels))
    for xid, count in sorted((xids or {}).items()):
        out.append(Series("kvscale_gpu_xid_errors_total", {**labels, "xid": str(xid)}, float(count)))
    return out


def gpu_series(readings: Sequence[RawReading], *, node: str, xids: Mapping[tuple[str, int], int]) -> list[Series]:
    """Series of every device, each with its XID counters (``xids``: (device UUID, XID) -> count)."""
    by_uuid: dict[str, dict[int, int]] = {}
    for (uuid, xid), count in xids.items():
        by_uuid.setdefault(uuid, {})[xid] = count
    out: list[Series] = []
    for reading in readings:
        uuid = reading.ref.uuid
        out.extend(device_series(reading, node=node, xids=by_uuid.get(uuid) if uuid else None))
    return out


def allocation_series(holders: Mapping[str, Sequence[Holder]], refs: Sequence[DeviceRef], *, node: str,
                      pod_uids: Mapping[tuple[str, str], str]) -> list[Series]:
    """``kvscale_gpu_allocation_info`` = 1 per (device, holding container); ``gpu`` is "" if NVML lacks the UUID."""
    index = {ref.uuid: ref.gpu for ref in refs if ref.uuid}
    order = {uuid: position for position, uuid in enumerate(index)}
    out: list[Series] = []
    for uuid, held in sorted(holders.items(), key=lambda item: (order.get(item[0], len(order)), item[0])):
        for h in held:
            out.append(Series("kvscale_gpu_allocation_info", {
                "node": node, "gpu": index.get(uuid, ""), "uuid": uuid, "namespace": h.namespace, "pod": h.pod,
                "container": h.container, "pod_uid": pod_uids.get((h.namespace, h.pod), ""),
                "resource": h.resource, "claim": h.claim}, 1.0))
    return out
