"""vLLM targets from the Kubernetes API: a list + watch of the pods on this node.

The ``kubernetes`` client is synchronous, so the list/watch loop runs in a daemon
thread and publishes an immutable snapshot of targets that the collection cycle
reads without locking. A 410 Gone (resourceVersion too old) relists; any other
failure is logged and retried with backoff while the last known pods stay scraped
(their scrapes are live, so nothing is frozen).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from typing import Any

from exporter.targets import Target, target_from_pod

log = logging.getLogger(__name__)


class PodWatcher:
    """Keeps the vLLM pods on ``node_name`` matching ``label_selector`` current."""

    def __init__(self, *, api: Any, node_name: str, label_selector: str, default_port: int,
                 default_path: str, watch_timeout_seconds: int = 300, max_backoff_seconds: float = 30.0) -> None:
        self._api = api
        self._field_selector = f"spec.nodeName={node_name}"
        self._label_selector = label_selector
        self._default_port = default_port
        self._default_path = default_path
        self._watch_timeout = watch_timeout_seconds
        self._max_backoff = max_backoff_seconds
        self._pods: dict[str, dict[str, Any]] = {}
        self._targets: tuple[Target, ...] = ()
        self._stop = threading.Event()
        self.ready = threading.Event()
        """Set after the first successful list."""
        self.relists = 0
        self._thread = threading.Thread(target=self._run, name="pod-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def targets(self) -> Sequence[Target]:
        return self._targets

    def _publish(self) -> None:
        found = (target_from_pod(p, default_port=self._default_port, default_path=self._default_path)
                 for p in self._pods.values())
        self._targets = tuple(sorted((t for t in found if t is not None), key=lambda t: t.key))

    def _run(self) -> None:
        from kubernetes.client.exceptions import ApiException

        backoff = 0.5
        while not self._stop.is_set():
            try:
                version = self._list()
                backoff = 0.5
                while not self._stop.is_set():
                    version = self._watch(version)
            except ApiException as exc:
                if exc.status == 410:
                    log.info("pod watch expired (410 Gone); relisting")
                    continue
                log.warning("Kubernetes API error while watching pods: %s %s", exc.status, exc.reason)
            except Exception as exc:  # network errors, bad JSON: keep the last pods, retry
                log.warning("pod list/watch failed: %s", exc)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self._max_backoff)

    def _list(self) -> str:
        resp = self._api.list_pod_for_all_namespaces(
            field_selector=self._field_selector, label_selector=self._label_selector, _preload_content=False)
        body = json.loads(resp.data)
        self._pods = {_uid(p): p for p in body.get("items") or []}
        self._publish()
        self.relists += 1
        self.ready.set()
        version: str = body["metadata"]["resourceVersion"]
        log.info("listed %d vLLM pods on this node (resourceVersion %s)", len(self._pods), version)
        return version

    def _watch(self, version: str) -> str:
        from kubernetes import watch

        stream = watch.Watch()
        for event in stream.stream(self._api.list_pod_for_all_namespaces, field_selector=self._field_selector,
                                   label_selector=self._label_selector, resource_version=version,
                                   timeout_seconds=self._watch_timeout, allow_watch_bookmarks=True):
            if self._stop.is_set():
                stream.stop()
                break
            kind, pod = event["type"], event["raw_object"]
            version = (pod.get("metadata") or {}).get("resourceVersion", version)
            if kind in ("ADDED", "MODIFIED"):
                self._pods[_uid(pod)] = pod
            elif kind == "DELETED":
                self._pods.pop(_uid(pod), None)
            else:
                continue  # BOOKMARK: only the version moves
            self._publish()
        return version


def _uid(pod: dict[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")


def core_v1_api() -> Any:
    """A CoreV1Api from the in-cluster service account, else the local kubeconfig."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.CoreV1Api()
