"""vLLM targets from the Kubernetes API: a list + watch of the pods on this node.

The ``kubernetes`` client is synchronous, so the list/watch loop runs in a daemon
thread and publishes an immutable snapshot of targets that the collection cycle
reads without locking. A 410 Gone (resourceVersion too old) relists at once; any
other failure is logged and retried with jittered exponential backoff while the
last known pods stay scraped (their scrapes are live, so nothing is frozen).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from exporter.targets import Target, target_from_pod

log = logging.getLogger(__name__)

INITIAL_BACKOFF_SECONDS = 0.5
CONNECT_TIMEOUT_SECONDS = 10.0
# A watch that the server ends sooner than this is re-opened only after this long, so a
# misbehaving proxy that closes every watch at once cannot turn the loop into a busy spin.
MIN_WATCH_SECONDS = 1.0


class PodListError(ValueError):
    """The API server answered a pod list with something that is not a PodList."""


def backoff_delay(attempt: int, *, initial: float, maximum: float, jitter: float) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): doubling, capped at ``maximum``.

    ``jitter`` in [0, 1] scales the delay into [50%, 100%]: after an API server restart
    the exporters of a whole cluster must not all come back in the same instant.
    """
    return min(initial * 2.0 ** min(attempt, 60), maximum) * (0.5 + 0.5 * jitter)


def parse_pod_list(data: bytes) -> tuple[dict[str, dict[str, Any]], str]:
    """A PodList body as (pods by uid, resourceVersion); :class:`PodListError` when malformed."""
    try:
        body = json.loads(data)
        items = body.get("items") or []
        version = body["metadata"]["resourceVersion"]
        if not isinstance(items, list) or not isinstance(version, str) or not version:
            raise TypeError("items must be a list and resourceVersion a non-empty string")
        pods = {pod_uid(pod): pod for pod in items}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise PodListError(f"malformed PodList: {exc}") from exc
    return pods, version


class PodWatcher:
    """Keeps the vLLM pods on ``node_name`` matching ``label_selector`` current."""

    def __init__(self, *, api: Any, node_name: str, label_selector: str, default_port: int,
                 default_path: str, watch_timeout_seconds: int = 300, max_backoff_seconds: float = 30.0,
                 request_timeout_seconds: float = 30.0, jitter: Callable[[], float] = random.random) -> None:
        self._api = api
        self._field_selector = f"spec.nodeName={node_name}"
        self._label_selector = label_selector
        self._default_port = default_port
        self._default_path = default_path
        self._watch_timeout = watch_timeout_seconds
        self._max_backoff = max_backoff_seconds
        self._request_timeout = (min(CONNECT_TIMEOUT_SECONDS, request_timeout_seconds), request_timeout_seconds)
        self._jitter = jitter
        self._pods: dict[str, dict[str, Any]] = {}
        self._targets: tuple[Target, ...] = ()
        self._stop = threading.Event()
        self._stream: Any = None
        self.ready = threading.Event()
        """Set after the first successful list."""
        self.relists = 0
        """Successful lists so far (the first one included)."""
        self.failures = 0
        """Failed list or watch attempts so far (410 Gone excluded: it is routine)."""
        self.resource_version: str | None = None
        """The last resourceVersion seen (list, event or bookmark)."""
        self._thread = threading.Thread(target=self._run, name="pod-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching: the open watch is cut, and the thread is given ``timeout`` to end."""
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.stop()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def targets(self) -> Sequence[Target]:
        return self._targets

    def _publish(self) -> None:
        found = (target_from_pod(p, default_port=self._default_port, default_path=self._default_path)
                 for p in self._pods.values())
        self._targets = tuple(sorted((t for t in found if t is not None), key=lambda t: t.key))

    def _run(self) -> None:
        from kubernetes.client.exceptions import ApiException

        attempt = 0
        while not self._stop.is_set():
            try:
                version = self._list()
                attempt = 0
                while not self._stop.is_set():
                    started = time.monotonic()
                    version = self._watch(version)
                    self._stop.wait(max(0.0, MIN_WATCH_SECONDS - (time.monotonic() - started)))
            except ApiException as exc:
                if exc.status == 410:
                    log.info("pod watch expired (410 Gone); relisting")
                    continue
                self._failed(f"Kubernetes API error while watching pods: {exc.status} {exc.reason}")
            except Exception as exc:  # network errors, bad JSON: keep the last pods, retry
                self._failed(f"pod list/watch failed: {type(exc).__name__}: {exc}")
            delay = backoff_delay(attempt, initial=INITIAL_BACKOFF_SECONDS, maximum=self._max_backoff,
                                  jitter=self._jitter())
            attempt += 1
            self._stop.wait(delay)

    def _failed(self, message: str) -> None:
        if self._stop.is_set():
            return  # the failure is our own stop() cutting the watch
        self.failures += 1
        log.warning("%s; keeping %d known targets and retrying", message, len(self._targets))

    def _list(self) -> str:
        resp = self._api.list_pod_for_all_namespaces(
            field_selector=self._field_selector, label_selector=self._label_selector,
            _preload_content=False, _request_timeout=self._request_timeout)
        try:
            pods, version = parse_pod_list(resp.data)
        finally:
            resp.release_conn()
        # Only a well-formed list replaces what we know: a bad answer must not drop targets.
        self._pods = pods
        self._publish()
        self.relists += 1
        self.resource_version = version
        self.ready.set()
        log.info("listed %d vLLM pods on this node (resourceVersion %s)", len(pods), version)
        return version

    def _watch(self, version: str) -> str:
        from kubernetes import watch

        self._stream = stream = watch.Watch()
        if self._stop.is_set():  # stop() ran before the stream existed, so it could not cut it
            return version
        # The read timeout outlasts the server-side one: it only fires on a silently dead connection.
        events = stream.stream(self._api.list_pod_for_all_namespaces, field_selector=self._field_selector,
                               label_selector=self._label_selector, resource_version=version,
                               timeout_seconds=self._watch_timeout, allow_watch_bookmarks=True,
                               _request_timeout=(self._request_timeout[0], self._watch_timeout + 30))
        for event in events:
            if self._stop.is_set():
                stream.stop()
                break
            kind, pod = event["type"], event["raw_object"]
            version = (pod.get("metadata") or {}).get("resourceVersion") or version
            self.resource_version = version
            if kind in ("ADDED", "MODIFIED"):
                self._pods[pod_uid(pod)] = pod
            elif kind == "DELETED":
                self._pods.pop(pod_uid(pod), None)
            else:
                continue  # BOOKMARK: only the version moves
            self._publish()
        return version


def pod_uid(pod: dict[str, Any]) -> str:
    """The pod's identity across events: its uid, else namespace/name."""
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
