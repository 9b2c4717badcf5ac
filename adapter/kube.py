"""The adapter's views of the Kubernetes API, through the shared list+watch.

Two watches, both :class:`exporter.contract.kubewatch.KubeWatch` (backoff, read
timeouts, 410 relist, readiness, a real stop): every active pod of the cluster, as
:class:`adapter.inventory.PodInfo` grouped by namespace (the label selectors and
workloads of HPA requests resolve against it), and the exporter DaemonSet's ready
pods, as the /metrics URLs the direct source reads. Only the converted summaries
are kept, never whole pod objects: the inventory of a large cluster stays small.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from adapter.endpoints import EndpointError, url_from_pod
from adapter.inventory import PodInfo, pod_from_object
from exporter.contract.kubewatch import DEFAULT_TIMINGS, KubeWatch, WatchTimings, pods

ByNamespace = Mapping[str, tuple[PodInfo, ...]]


def active_pod(obj: dict[str, Any]) -> PodInfo | None:
    """The pod's summary while it counts for the HPA; None once deleting, Succeeded or Failed."""
    pod = pod_from_object(obj)
    return pod if pod.active else None


def by_namespace(items: Mapping[str, PodInfo]) -> ByNamespace:
    grouped: dict[str, list[PodInfo]] = {}
    for pod in items.values():
        grouped.setdefault(pod.namespace, []).append(pod)
    return {ns: tuple(sorted(found, key=lambda p: p.name)) for ns, found in grouped.items()}


class KubePodInventory:
    """Implements :class:`adapter.inventory.PodInventory` from a watch of every pod."""

    def __init__(self, *, core_v1: Any, timings: WatchTimings = DEFAULT_TIMINGS,
                 jitter: Callable[[], float] = random.random) -> None:
        self.watch: KubeWatch[PodInfo, ByNamespace] = KubeWatch(
            resource=pods(core_v1), convert=active_pod, view=by_namespace, timings=timings, jitter=jitter)

    def start(self) -> KubePodInventory:
        self.watch.start()
        return self

    def pods(self, namespace: str) -> Sequence[PodInfo]:
        return self.watch.view().get(namespace, ())

    @property
    def ready(self) -> bool:
        return self.watch.ready

    @property
    def generation(self) -> int:
        return self.watch.generation

    def close(self) -> None:
        self.watch.stop()


def sorted_urls(items: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(sorted(items.values()))


class KubeExporterEndpoints:
    """Implements :class:`adapter.endpoints.EndpointSource`: the ready exporter pods found by label selector."""

    def __init__(self, *, core_v1: Any, namespace: str, label_selector: str, port: int,
                 timings: WatchTimings = DEFAULT_TIMINGS, jitter: Callable[[], float] = random.random) -> None:
        self.watch: KubeWatch[str, tuple[str, ...]] = KubeWatch(
            resource=pods(core_v1), convert=functools.partial(url_from_pod, port=port), view=sorted_urls,
            namespace=namespace, label_selector=label_selector, timings=timings, jitter=jitter)

    def start(self) -> KubeExporterEndpoints:
        self.watch.start()
        return self

    async def endpoints(self) -> Sequence[str]:
        if not self.watch.ready:  # "no exporters" would be a guess: say that discovery has not answered yet
            raise EndpointError(f"exporter discovery: {self.watch.status()}")
        return self.watch.view()

    def close(self) -> None:
        self.watch.stop()
