"""vLLM targets from the Kubernetes API: the running pods on this node, through the shared list+watch.

:class:`exporter.contract.kubewatch.KubeWatch` does the I/O and the hardening (backoff,
read timeouts, 410 relist, a real stop); this module only says which pods (this node's,
by label) and how one becomes a target (:func:`exporter.vllm.targets.target_from_pod`).
While the API server is away the last known targets stay scraped: their scrapes are
live, so nothing is frozen.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from exporter.contract.kubewatch import DEFAULT_TIMINGS, KubeWatch, WatchTimings, pods
from exporter.vllm.targets import Target, target_from_pod


def sorted_targets(items: Mapping[str, Target]) -> tuple[Target, ...]:
    return tuple(sorted(items.values(), key=lambda t: t.key))


class PodWatcher:
    """Implements :class:`exporter.vllm.targets.TargetSource` for the vLLM pods on ``node_name``."""

    def __init__(self, *, core_v1: Any, node_name: str, label_selector: str, default_port: int,
                 default_path: str, timings: WatchTimings = DEFAULT_TIMINGS,
                 jitter: Callable[[], float] = random.random) -> None:
        convert = functools.partial(target_from_pod, default_port=default_port, default_path=default_path)
        self.watch: KubeWatch[Target, tuple[Target, ...]] = KubeWatch(
            resource=pods(core_v1), convert=convert, view=sorted_targets, label_selector=label_selector,
            field_selector=f"spec.nodeName={node_name}", timings=timings, jitter=jitter)

    def start(self) -> PodWatcher:
        self.watch.start()
        return self

    def targets(self) -> Sequence[Target]:
        return self.watch.view()

    @property
    def ready(self) -> bool:
        return self.watch.ready

    def close(self) -> None:
        self.watch.stop()
