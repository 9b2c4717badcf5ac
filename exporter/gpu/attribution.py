"""Pure GPU -> pod attribution from the kubelet's device allocations.

The kubelet lists, per container, the device IDs the device plugin handed out. For
NVIDIA these are GPU UUIDs (``GPU-...``), MIG device UUIDs (``MIG-...``) and, under
time-slicing, replica IDs ``UUID::N`` (NVIDIA plugin) or ``UUID/vgpuN`` (GKE): several
containers then share one physical device.

Devices handed out by Dynamic Resource Allocation arrive here already resolved to a
UUID (``exporter.gpu.dra``), with their ResourceClaim. Two rules keep the numbers honest:
- a device's own series never carry pod labels: who holds it is a list of holders per
  device (an info series each), so a device named by both a device plugin and a DRA
  claim, or by the same container twice, is held once;
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
from exporter.gpu.readings import Holder, Owner

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
    """The device plugin's resource name, or the DRA driver's name."""
    device_ids: tuple[str, ...]
    claim: str = ""
    """The DRA ResourceClaim the devices come through; "" for a device plugin (its resource is then checked)."""


@dataclass(frozen=True, slots=True)
class MigDevice:
    """What attribution needs to know of a MIG device, from NVML."""

    parent_uuid: str
    share: float
    """Fraction of the physical GPU this MIG device is (its memory over the GPU's)."""


@dataclass
class Attribution:
    holders: dict[str, tuple[Holder, ...]] = field(default_factory=dict)
    """Device UUID (GPU or MIG) -> the containers holding it, sorted (several when shared)."""
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
    return {uuid: {owner: count for owner, (count, _) in held.items()} for uuid, held in _grants(allocations).items()}


def _grants(allocations: Iterable[Allocation]) -> dict[str, dict[Owner, tuple[int, Holder]]]:
    """Device UUID -> {container: (replicas it holds, how it got them)}; a DRA grant wins over a plugin's."""
    seen: set[tuple[Owner, str]] = set()
    out: dict[str, dict[Owner, tuple[int, Holder]]] = {}
    for alloc in allocations:
        if not alloc.claim and not is_gpu_resource(alloc.resource):
            continue
        owner = (alloc.namespace, alloc.pod, alloc.container)
        holder = Holder(*owner, resource=alloc.resource, claim=alloc.claim)
        for device_id in alloc.device_ids:
            if not device_id:
                continue
            # A repeated ID (or a plugin and a claim naming one device) is one device, not two.
            repeated = (owner, device_id) in seen
            seen.add((owner, device_id))
            held = out.setdefault(base_device(device_id), {})
            count, known = held.get(owner, (0, holder))
            held[owner] = (count + (0 if repeated else 1), holder if holder.claim and not known.claim else known)
    return out


def attribute(allocations: Iterable[Allocation], *, mig: Mapping[str, MigDevice]) -> Attribution:
    """Holders of each device and GPU shares of each pod; see the module docstring."""
    result = Attribution()
    unresolved: list[str] = []
    for uuid, grants in sorted(_grants(allocations).items()):
        result.holders[uuid] = tuple(sorted(holder for _, holder in grants.values()))
        holders = {owner: count for owner, (count, _) in grants.items()}
        if uuid.startswith("MIG-") and uuid not in mig:
            unresolved.append(uuid)
            continue
        unit = mig[uuid].share if uuid in mig else 1.0
        replicas = sum(holders.values())
        for (namespace, pod, _), count in holders.items():
            key = (namespace, pod)
            result.pod_gpus[key] = result.pod_gpus.get(key, 0.0) + unit * count / replicas
    result.unresolved = tuple(unresolved)
    return result
