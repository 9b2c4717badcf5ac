"""Pod inventory: which pods exist, their labels and owning workload.

Label selectors resolve against real pod labels. In a cluster the inventory is a
watch of the Kubernetes API (:class:`adapter.kube.KubePodInventory`); outside one it is
a static ``v1 PodList`` file (what ``kubectl get pods -A -o yaml`` prints). Parsing
is pure; only :func:`load_pod_file` touches the disk.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from adapter.selectors import Selector


class InventoryError(Exception):
    """The pod inventory could not be read or is malformed."""


@dataclass(frozen=True)
class PodInfo:
    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    owner_kind: str = ""
    owner_name: str = ""
    active: bool = True  # False once deleting, Succeeded or Failed: the HPA ignores such pods

    @property
    def workload(self) -> tuple[str, str]:
        """(kind, name) of the controller: a Deployment is read through its ReplicaSet's name."""
        if self.owner_kind == "ReplicaSet":
            pod_hash = self.labels.get("pod-template-hash", "")
            suffix = f"-{pod_hash}"
            if pod_hash and self.owner_name.endswith(suffix):
                return "Deployment", self.owner_name[: -len(suffix)]
        return self.owner_kind, self.owner_name


class PodInventory(Protocol):
    def pods(self, namespace: str) -> Sequence[PodInfo]:
        """Active pods of a namespace."""
        ...

    @property
    def ready(self) -> bool:
        """Whether the pods are known (a watch has listed once); the adapter's /readyz waits for it."""
        ...

    @property
    def generation(self) -> int:
        """Bumped whenever the pods change: cached answers are valid for one generation."""
        ...


def select(pods: Iterable[PodInfo], selector: Selector) -> list[PodInfo]:
    return [p for p in pods if p.active and selector.matches(p.labels)]


def owned_by(pods: Iterable[PodInfo], kind: str, name: str) -> list[PodInfo]:
    return [p for p in pods if p.active and p.workload == (kind, name)]


def pod_from_object(obj: Mapping[str, Any]) -> PodInfo:
    """A PodInfo from a v1 Pod object (dict form, as JSON/YAML or the kubernetes client's to_dict)."""
    meta = obj.get("metadata") or {}
    name, namespace = meta.get("name"), meta.get("namespace") or "default"
    if not isinstance(name, str) or not name:
        raise InventoryError("pod without metadata.name")
    owner_kind = owner_name = ""
    for ref in meta.get("ownerReferences") or meta.get("owner_references") or []:
        if ref.get("controller"):
            owner_kind, owner_name = str(ref.get("kind", "")), str(ref.get("name", ""))
    phase = (obj.get("status") or {}).get("phase", "")
    deleting = bool(meta.get("deletionTimestamp") or meta.get("deletion_timestamp"))
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    return PodInfo(str(namespace), name, labels, owner_kind, owner_name,
                   active=not deleting and phase not in ("Succeeded", "Failed"))


def parse_pod_list(text: str) -> list[PodInfo]:
    """Pods from a PodList (or a List of Pods, or a single Pod) in YAML or JSON."""
    try:
        doc = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise InventoryError(f"not YAML or JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InventoryError("expected a PodList object")
    if doc.get("kind") == "Pod":
        return [pod_from_object(doc)]
    items = doc.get("items")
    if not isinstance(items, list):
        raise InventoryError(f"expected a PodList with items, got kind {doc.get('kind')!r}")
    return [pod_from_object(item) for item in items if isinstance(item, dict) and item.get("kind", "Pod") == "Pod"]


class StaticInventory:
    """A fixed set of pods (from a file or given directly)."""

    def __init__(self, pods: Iterable[PodInfo]) -> None:
        self._by_ns: dict[str, list[PodInfo]] = {}
        for pod in pods:
            self._by_ns.setdefault(pod.namespace, []).append(pod)

    def pods(self, namespace: str) -> Sequence[PodInfo]:
        return [p for p in self._by_ns.get(namespace, ()) if p.active]

    @property
    def ready(self) -> bool:
        return True

    @property
    def generation(self) -> int:
        return 0  # never changes


def load_pod_file(path: Path) -> StaticInventory:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InventoryError(f"cannot read pod file {path}: {exc}") from exc
    return StaticInventory(parse_pod_list(text))
