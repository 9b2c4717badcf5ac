"""In-cluster pod inventory: a list+watch cache of pods through the ``kubernetes`` client.

The client is synchronous, so the watch runs in a daemon thread and swaps
immutable per-namespace views that request handlers read without locking. A watch
that ends or fails (410 Gone included) is followed by a fresh list; until the
first list succeeds the cache is not ready.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from adapter.inventory import PodInfo, pod_from_object

log = logging.getLogger(__name__)


class KubePodCache:
    """Implements :class:`adapter.inventory.PodInventory` from the Kubernetes API."""

    def __init__(self, *, core_api: Any, watch_factory: Any, retry_delay: float = 2.0,
                 watch_timeout: int = 300) -> None:
        self._api = core_api
        self._watch_factory = watch_factory
        self._retry_delay = retry_delay
        self._watch_timeout = watch_timeout
        self._pods: dict[tuple[str, str], PodInfo] = {}
        self._by_ns: dict[str, tuple[PodInfo, ...]] = {}
        self._stop = threading.Event()
        self.synced = threading.Event()
        self.generation = 0

    def pods(self, namespace: str) -> Sequence[PodInfo]:
        return self._by_ns.get(namespace, ())

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="kube-pod-cache", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def _publish(self) -> None:
        by_ns: dict[str, list[PodInfo]] = {}
        for pod in self._pods.values():
            if pod.active:
                by_ns.setdefault(pod.namespace, []).append(pod)
        self._by_ns = {ns: tuple(pods) for ns, pods in by_ns.items()}
        self.generation += 1

    def _to_dict(self, obj: Any) -> dict[str, Any]:
        if isinstance(obj, dict):
            return obj
        data: dict[str, Any] = self._api.api_client.sanitize_for_serialization(obj)
        return data

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                version = self._list()
                self._watch(version)
            except Exception as exc:  # the client raises ApiException, urllib3 and socket errors
                log.warning("pod watch failed, relisting in %.0fs: %s", self._retry_delay, exc)
                time.sleep(self._retry_delay)

    def _list(self) -> str:
        pod_list = self._api.list_pod_for_all_namespaces(_request_timeout=30)
        pods = {}
        for item in pod_list.items:
            pod = pod_from_object(self._to_dict(item))
            pods[(pod.namespace, pod.name)] = pod
        self._pods = pods
        self._publish()
        self.synced.set()
        version: str = pod_list.metadata.resource_version
        return version

    def _watch(self, version: str) -> None:
        stream = self._watch_factory().stream(self._api.list_pod_for_all_namespaces, resource_version=version,
                                              timeout_seconds=self._watch_timeout)
        for event in stream:
            if self._stop.is_set():
                return
            kind, obj = event["type"], event.get("raw_object") or self._to_dict(event["object"])
            if kind == "ERROR":
                raise RuntimeError(f"watch error: {obj.get('message', obj)}")
            pod = pod_from_object(obj)
            key = (pod.namespace, pod.name)
            if kind == "DELETED":
                self._pods.pop(key, None)
            else:
                self._pods[key] = pod
            self._publish()
