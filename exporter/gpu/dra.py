"""Pure DRA attribution: the kubelet's (driver, pool, device) names resolved to GPU UUIDs.

Under Dynamic Resource Allocation the kubelet's pod-resources API names a container's
devices by driver, pool and device (``ClaimResource``), never by UUID. The node's
``ResourceSlice`` objects, published by the DRA driver, carry the UUID as a device
attribute: ``uuid`` for a whole GPU, and for a MIG device ``uuid`` plus ``parentUUID`` and
``profile`` (NVIDIA's driver ``gpu.nvidia.com``). ``resource.k8s.io/v1`` puts attributes
at ``spec.devices[].attributes``; ``v1beta1`` under ``spec.devices[].basic.attributes``;
both are read. A device whose slice has not arrived yet (a MIG device created on demand)
is unresolved this cycle and resolved by the cycle after its slice is seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from exporter.gpu.attribution import Allocation

DeviceKey = tuple[str, str, str]
"""(driver, pool, device) as the kubelet and the ResourceSlice name a device."""


@dataclass(frozen=True, slots=True)
class ClaimDevice:
    """One device of a container's ResourceClaim, as the kubelet reports it."""

    namespace: str
    pod: str
    container: str
    claim: str
    driver: str
    pool: str
    device: str
    share_id: str = ""
    """Since Kubernetes 1.35: which share of a shared device (consumable capacity)."""


@dataclass(frozen=True, slots=True)
class SliceDevice:
    """A device of a ResourceSlice that has a GPU UUID."""

    uuid: str
    parent_uuid: str = ""
    """The physical GPU's UUID when this is a MIG device."""
    profile: str = ""
    """The MIG profile (``1g.10gb``) when this is a MIG device."""


def _attribute(attributes: Mapping[str, Any], name: str) -> str:
    """A device attribute's value: attributes are typed unions ``{"string": ...}`` (or ``version``, ...)."""
    value = attributes.get(name)
    if isinstance(value, Mapping):
        for kind in ("string", "version", "int", "bool"):
            if kind in value:
                return str(value[kind])
        return ""
    return "" if value is None else str(value)


def slice_devices(obj: Mapping[str, Any]) -> dict[DeviceKey, SliceDevice] | None:
    """The UUID-bearing devices of one ResourceSlice (v1 or v1beta1 shape); None when it has none."""
    spec = obj.get("spec") or {}
    driver, pool = str(spec.get("driver") or ""), str((spec.get("pool") or {}).get("name") or "")
    out: dict[DeviceKey, SliceDevice] = {}
    for device in spec.get("devices") or []:
        attributes = device.get("attributes") or (device.get("basic") or {}).get("attributes") or {}
        uuid = _attribute(attributes, "uuid")
        if uuid and device.get("name"):
            out[(driver, pool, str(device["name"]))] = SliceDevice(
                uuid, _attribute(attributes, "parentUUID"), _attribute(attributes, "profile"))
    return out or None


def device_index(slices: Mapping[str, Mapping[DeviceKey, SliceDevice]]) -> dict[DeviceKey, SliceDevice]:
    """All slices' devices in one lookup (the watch's view)."""
    return {key: device for devices in slices.values() for key, device in devices.items()}


def resolve(claims: Iterable[ClaimDevice],
            devices: Mapping[DeviceKey, SliceDevice]) -> tuple[list[Allocation], list[ClaimDevice]]:
    """Claim devices as allocations of their UUIDs, and those no slice names (yet).

    Devices of other drivers (a NIC, an FPGA) have no ``uuid`` attribute and are never
    GPUs: they land in the unresolved list only if their driver published a GPU elsewhere.
    """
    allocations: list[Allocation] = []
    unresolved: list[ClaimDevice] = []
    gpu_drivers = {driver for driver, _, _ in devices}
    for claim in claims:
        found = devices.get((claim.driver, claim.pool, claim.device))
        if found is None:
            if claim.driver in gpu_drivers or not devices:
                unresolved.append(claim)
            continue
        allocations.append(Allocation(claim.namespace, claim.pod, claim.container, claim.driver, (found.uuid,),
                                      claim=claim.claim))
    return allocations, unresolved
