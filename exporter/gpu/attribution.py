"""Pure GPU -> pod attribution from the kubelet's device allocations.

The kubelet lists, per container, the device IDs the device plugin handed out. For
NVIDIA these are GPU UUIDs (``GPU-...``), MIG device UUIDs (``MIG-...``) and, under
time-slicing, replica IDs ``UUID::N`` (NVIDIA plugin) or ``UUID/vgpuN`` (GKE): several
containers then share one physical device.

Two rules keep the numbers honest:
- a device's series carry pod labels only when exactly one container holds it; a
  physical GPU shared by several containers is reported once, unattributed, instead of
  once per pod (summing per-pod GPU memory must never count a GPU twice);
- a pod's GPU count for the cost metric is the sum of its shares: 1 per whole GPU, the
  MIG device's fraction of its GPU's memory, and for a time-sliced device the pod's
  replicas over all replicas of that device currently allocated (the occupants split
  the bill). Shares of one device always sum to its unit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from exporter.collector import PodKey
from exporter.gpu.readings import Owner

GPU_RESOURCE_PREFIXES = ("nvidia.com/gpu", "nvidia.com/mig-")
"""``nvidia.com/gpu``, its renamed time-sliced form ``nvidia.com/gpu.shared``, and MIG strategies."""

_REPLICA = re.compile(r"(::\d+|/vgpu\d+)$")


@dataclass(frozen=True, slots=True)
class Allocation:
    """Devices of one resource allocated to one container (one kubelet ContainerDevices)."""

    namespace: str
    pod: str
    container: str
    resource: str
    device_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MigDevice:
    """What attribution needs to know of a MIG device, from NVML."""

    parent_uuid: str
    share: float
    """Fraction of the physical GPU this MIG device is (its memory over the GPU's)."""


@dataclass
class Attribution:
    owners: dict[str, Owner] = field(default_factory=dict)
    """Device UUID (GPU or MIG) -> the single container holding it."""
    pod_gpus: dict[PodKey, float] = field(default_factory=dict)
    """(namespace, pod) -> GPUs it holds, fractional under MIG and time-slicing."""
    unresolved: tuple[str, ...] = ()
    """MIG device IDs NVML does not know (no share can be computed): left out of ``pod_gpus``."""


def base_device(device_id: str) -> str:
    """The physical or MIG device UUID behind a device ID (time-slicing suffixes removed)."""
    return _REPLICA.sub("", device_id.strip())


def is_gpu_resource(resource: str) -> bool:
    return resource.startswith(GPU_RESOURCE_PREFIXES)


def holdings(allocations: Iterable[Allocation]) -> dict[str, dict[Owner, int]]:
    """Device UUID -> {container: number of distinct device IDs (replicas) it holds}."""
    seen: set[tuple[Owner, str]] = set()
    out: dict[str, dict[Owner, int]] = {}
    for alloc in allocations:
        if not is_gpu_resource(alloc.resource):
            continue
        owner = (alloc.namespace, alloc.pod, alloc.container)
        for device_id in alloc.device_ids:
            if not device_id or (owner, device_id) in seen:
                continue  # a repeated ID is one device, not two
            seen.add((owner, device_id))
            held = out.setdefault(base_device(device_id), {})
            held[owner] = held.get(owner, 0) + 1
    return out


def attribute(allocations: Iterable[Allocation], *, mig: Mapping[str, MigDevice]) -> Attribution:
    """Owners of each device and GPU shares of each pod; see the module docstring."""
    held = holdings(allocations)
    result = Attribution()
    unresolved: list[str] = []
    physical: dict[str, set[Owner]] = {}
    for uuid, holders in sorted(held.items()):
        if len(holders) == 1:
            result.owners[uuid] = next(iter(holders))
        parent = mig[uuid].parent_uuid if uuid in mig else uuid
        physical.setdefault(parent, set()).update(holders)
        if uuid.startswith("MIG-") and uuid not in mig:
            unresolved.append(uuid)
            continue
        unit = mig[uuid].share if uuid in mig else 1.0
        replicas = sum(holders.values())
        for (namespace, pod, _), count in holders.items():
            key = (namespace, pod)
            result.pod_gpus[key] = result.pod_gpus.get(key, 0.0) + unit * count / replicas
    for parent, containers in physical.items():
        if len(containers) == 1:
            # The board (power, temperature, clock) belongs to a pod only if nobody else is on it.
            result.owners[parent] = next(iter(containers))
        else:
            result.owners.pop(parent, None)
    result.unresolved = tuple(unresolved)
    return result
