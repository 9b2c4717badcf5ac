"""One hardened Kubernetes list+watch, shared by the exporter (its vLLM pods) and the adapter.

The ``kubernetes`` client is synchronous, so the loop runs in a daemon thread and
publishes an immutable view (built by the user's ``view`` function from the
converted items) that readers take without locking. The first successful list sets
``ready``; from then on the last known view is kept through every failure: a 410 Gone
relists at once; a dropped or hung watch (the read timeout outlasts the server's own
``timeoutSeconds``) or an API server that refuses or errors is retried from the last
resourceVersion with jittered exponential backoff. ``stop()`` cuts an open request and
joins the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from exporter.contract.kube_events import Convert, KubeSourceError, WatchExpired, apply_event, backoff_delay, parse_list

log = logging.getLogger(__name__)

T = TypeVar("T")
V = TypeVar("V")


@dataclass(frozen=True)
class Resource:
    """A kind of object, as the client's list calls: e.g. ``pods(CoreV1Api(...))``.

    ``list_namespaced`` is None for cluster-scoped kinds (nodes, ResourceSlices).
    """

    name: str
    list_all: Callable[..., Any]
    list_namespaced: Callable[..., Any] | None = None


def pods(core_v1: Any) -> Resource:
    return Resource("pods", core_v1.list_pod_for_all_namespaces, core_v1.list_namespaced_pod)


@dataclass(frozen=True)
class WatchTimings:
    """Timeouts and retry pacing, in seconds. Tests shrink them; the defaults suit a real cluster."""

    connect: float = 10.0
    read: float = 30.0
    """Read timeout of a list request."""
    watch: int = 300
    """The server-side ``timeoutSeconds`` of a watch (jittered up to 2x, as client-go does)."""
    watch_read_slack: float = 30.0
    """A watch silent this long past its ``timeoutSeconds`` is a dead connection."""
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    min_watch: float = 1.0
    """A watch that ends sooner is re-opened only after this long: no busy spin against a bad proxy."""
    page_size: int = 500
    """Objects per list page (``limit``), as client-go's reflector: bounds each answer's size."""


DEFAULT_TIMINGS = WatchTimings()


class KubeWatch(Generic[T, V]):
    """Keeps ``view(items)`` current for the objects of ``resource`` matching the selectors."""

    def __init__(self, *, resource: Resource, convert: Convert[T], view: Callable[[Mapping[str, T]], V],
                 namespace: str = "", label_selector: str = "", field_selector: str = "",
                 timings: WatchTimings = DEFAULT_TIMINGS, jitter: Callable[[], float] = random.random) -> None:
        if namespace and resource.list_namespaced is None:
            raise KubeSourceError(f"{resource.name} are cluster-scoped: no namespace to watch in")
        self._resource = resource
        self._convert = convert
        self._make_view = view
        self._namespace = namespace
        self._selectors = {"label_selector": label_selector or None, "field_selector": field_selector or None}
        self._timings = timings
        self._jitter = jitter
        self._items: dict[str, T] = {}
        self._view = view({})
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._resp: Any = None
        self._progressed = False
        self._thread = threading.Thread(target=self._run, name=f"kubewatch-{resource.name}", daemon=True)
        self.description = describe(resource.name, namespace, label_selector, field_selector)
        self.relists = 0
        """Successful lists so far (the first one included)."""
        self.expirations = 0
        """410 Gone answers (routine: each is followed by a relist)."""
        self.failures = 0
        """Failed list or watch attempts (refused, timed out, dropped, HTTP or ERROR answers)."""
        self.generation = 0
        """Bumped each time a new view is published."""
        self.resource_version: str | None = None
        """The last resourceVersion seen (list, event or bookmark)."""
        self.last_error: str | None = None
        """The cause of the last failure, None once a request succeeds again."""
        self.backoff = 0.0
        """Seconds waited before the current retry; 0 while healthy."""

    def start(self) -> KubeWatch[T, V]:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop watching: an open request is cut and the thread joined; False if it outlived ``timeout``."""
        self._stop.set()
        resp = self._resp
        if resp is not None:
            _cut(resp)
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def ready(self) -> bool:
        """Whether a list ever succeeded; it stays true through later failures (the view is kept)."""
        return self._ready.is_set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the first list succeeded (or ``timeout``); whether it did."""
        return self._ready.wait(timeout)

    async def until_ready(self, timeout: float | None = None) -> bool:
        """:meth:`wait_ready` for a coroutine: waits in a worker thread, not on the event loop."""
        return await asyncio.to_thread(self._ready.wait, timeout)

    def view(self) -> V:
        """The last published view (``view({})`` until the first list)."""
        return self._view

    def status(self) -> str:
        """One line for logs and readiness answers."""
        state = "ready" if self.ready else "no successful list yet"
        cause = f" (last error: {self.last_error})" if self.last_error else ""
        return f"watch of {self.description}: {state}{cause}"

    def _publish(self) -> None:
        self._view = self._make_view(self._items)
        self.generation += 1

    def _run(self) -> None:
        from kubernetes.client.exceptions import ApiException

        attempt, listed = 0, False
        while not self._stop.is_set():
            self._progressed = False
            try:
                if not listed:
                    self._list()
                    listed, attempt, self.backoff = True, 0, 0.0
                if self._stop.is_set():
                    break  # stopped during the list: no watch to open
                started = time.monotonic()
                self._watch()
                attempt, self.backoff = 0, 0.0  # a watch the server ended: healthy
                self._stop.wait(max(0.0, self._timings.min_watch - (time.monotonic() - started)))
                continue
            except (WatchExpired, ApiException) as exc:
                if isinstance(exc, WatchExpired) or exc.status == 410:
                    self.expirations += 1
                    listed = False
                    log.info("%s: expired (410 Gone: %s); relisting", self.description, _short(exc))
                    self._stop.wait(self._timings.min_watch)  # never a tight loop against a server that expires all
                    continue
                self._failed(f"Kubernetes API answered {exc.status} {exc.reason}")
            except Exception as exc:  # refused, timed out, dropped, malformed: keep the view, retry
                self._failed(f"{type(exc).__name__}: {_short(exc)}")
            if self._progressed:
                attempt = 0  # the watch worked for a while before it broke: the backoff starts afresh
            self.backoff = backoff_delay(attempt, initial=self._timings.initial_backoff,
                                         maximum=self._timings.max_backoff, jitter=self._jitter())
            attempt += 1
            self._stop.wait(self.backoff)

    def _failed(self, message: str) -> None:
        if self._stop.is_set():
            return  # the failure is our own stop() cutting the request
        self.failures += 1
        self.last_error = message
        log.warning("%s: %s; keeping the last view (%s) and retrying", self.description, message,
                    "ready" if self.ready else "not ready yet")

    def _call(self, **kwargs: Any) -> Any:
        args = {**self._selectors, **kwargs, "_preload_content": False}
        if self._namespace:
            assert self._resource.list_namespaced is not None
            return self._resource.list_namespaced(self._namespace, **args)
        return self._resource.list_all(**args)

    def _list(self) -> None:
        items: dict[str, T] = {}
        token: str | None = None
        while True:
            page = {"_continue": token} if token else {}
            resp = self._call(limit=self._timings.page_size, **page,
                              _request_timeout=(self._timings.connect, self._timings.read))
            self._resp = resp
            try:
                if self._stop.is_set():
                    return
                found, version, token = parse_list(resp.data, self._convert)
            finally:
                self._resp = None
                resp.release_conn()
            items.update(found)
            if token is None:
                break
        # Only a whole, well-formed list replaces what we know: a bad answer must not drop objects.
        self._items = items
        self._publish()
        self.relists += 1
        self.resource_version, self.last_error = version, None
        self._ready.set()
        log.info("%s: listed %d (resourceVersion %s)", self.description, len(items), version)

    def _watch(self) -> None:
        """One watch from the last resourceVersion, applied line by line until it ends."""
        seconds = int(self._timings.watch * (1.0 + self._jitter()))
        resp = self._call(watch=True, resource_version=self.resource_version, timeout_seconds=seconds,
                          allow_watch_bookmarks=True,
                          _request_timeout=(self._timings.connect, seconds + self._timings.watch_read_slack))
        self._resp = resp
        try:
            if self._stop.is_set():  # stop() ran before the response existed, so it could not cut it
                return
            self.last_error, self.backoff = None, 0.0  # the server answers again
            for line in _lines(resp):
                changed, seen = apply_event(self._items, line, self._convert)
                self._progressed = True
                self.resource_version = seen or self.resource_version
                if changed:
                    self._publish()
        finally:
            self._resp = None
            resp.close()  # never back to the pool half-read
            resp.release_conn()


def describe(resource: str, namespace: str, label_selector: str, field_selector: str) -> str:
    where = f"in {namespace}" if namespace else "in all namespaces"
    selected = ", ".join(s for s in (label_selector, field_selector) if s)
    return f"{resource} {where}" + (f" ({selected})" if selected else "")


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__


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
    with contextlib.suppress(OSError, ValueError, RuntimeError):
        resp.shutdown()  # urllib3 >= 2.3


def api_client(kubeconfig: str | None = None) -> Any:
    """A ``kubernetes`` ApiClient: ``kubeconfig`` if given, else in-cluster, else the default kubeconfig."""
    from kubernetes import client, config

    try:
        if kubeconfig:
            return config.new_client_from_config(config_file=kubeconfig)
        try:
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        except config.ConfigException:
            return config.new_client_from_config()
    except (config.ConfigException, OSError) as exc:
        raise KubeSourceError(f"no in-cluster service account and no usable kubeconfig: {exc}") from exc
