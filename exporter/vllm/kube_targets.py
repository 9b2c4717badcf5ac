"""vLLM targets from the Kubernetes API: a list + watch of the pods on this node.

The ``kubernetes`` client is synchronous, so the list/watch loop runs in a daemon
thread and publishes an immutable snapshot of targets that the collection cycle
reads without locking. A 410 Gone (resourceVersion too old) relists at once; any
other failure is logged and retried with jittered exponential backoff while the
last known pods stay scraped (their scrapes are live, so nothing is frozen).
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from exporter.contract.kube_events import PodSourceError, WatchExpired, apply_event, backoff_delay, parse_pod_list
from exporter.vllm.targets import Target, target_from_pod

log = logging.getLogger(__name__)

INITIAL_BACKOFF_SECONDS = 0.5
CONNECT_TIMEOUT_SECONDS = 10.0
# A watch that the server ends sooner than this is re-opened only after this long, so a
# misbehaving proxy that closes every watch at once cannot turn the loop into a busy spin.
MIN_WATCH_SECONDS = 1.0


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
        self._resp: Any = None
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
        resp = self._resp
        if resp is not None:
            _cut(resp)
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
            except (WatchExpired, ApiException) as exc:
                if isinstance(exc, WatchExpired) or exc.status == 410:
                    log.info("pod watch expired (410 Gone: %s); relisting", exc)
                    # Relist soon, but never in a tight loop against a server that expires every watch.
                    self._stop.wait(MIN_WATCH_SECONDS)
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
        # The read timeout outlasts the server-side one: it only fires on a silently dead connection.
        resp = self._api.list_pod_for_all_namespaces(
            field_selector=self._field_selector, label_selector=self._label_selector, watch=True,
            resource_version=version, timeout_seconds=self._watch_timeout, allow_watch_bookmarks=True,
            _preload_content=False, _request_timeout=(self._request_timeout[0], self._watch_timeout + 30))
        self._resp = resp
        try:
            if self._stop.is_set():  # stop() ran before the response existed, so it could not cut it
                return version
            for line in _lines(resp):
                changed, seen = apply_event(self._pods, line)
                version = self.resource_version = seen or version
                if changed:
                    self._publish()
        finally:
            self._resp = None
            resp.close()  # never back to the pool half-read
            resp.release_conn()
        return version


def _lines(resp: Any) -> Iterator[str]:
    """The non-empty lines of a streamed body, as they arrive."""
    buffer = b""
    for chunk in resp.stream(amt=None, decode_content=True):
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            if line.strip():
                yield line.decode("utf-8", errors="replace")
    if buffer.strip():
        yield buffer.decode("utf-8", errors="replace")


def _cut(resp: Any) -> None:
    """Unblock a thread reading ``resp``: shut its socket down (closing alone does not wake it)."""
    try:
        resp.shutdown()  # urllib3 >= 2.3
        return
    except (AttributeError, NotImplementedError, ValueError, RuntimeError, OSError):
        pass
    sock = getattr(getattr(resp, "connection", None), "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def core_v1_api() -> Any:
    """A CoreV1Api from the in-cluster service account, else the local kubeconfig."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError) as exc:
            raise PodSourceError(f"no in-cluster service account and no usable kubeconfig: {exc}") from exc
    return client.CoreV1Api()
