"""A fake Kubernetes API server for pods at the HTTP seam, for the real ``kubernetes`` client.

It speaks the real wire protocol of ``GET /api/v1/pods`` and
``GET /api/v1/namespaces/{ns}/pods``: a PodList with ``metadata.resourceVersion``, or with
``watch=true`` a stream of JSON lines ``{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR,
"object": ...}`` from a resourceVersion, filtered by label and field selectors (objects
entering or leaving the selection become ADDED/DELETED), ended after ``timeoutSeconds``.
A version older than the retained history gets the ERROR event with a 410 ``Expired``
Status, as etcd compaction causes. The server runs its own event loop in a thread, so
the synchronous client and the test body can both talk to it; its pod store outlives
``stop()``/``start()``, which is how a test takes the API server away and brings it back.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.conftest import free_port
from tests.exporter.kube_selectors import Obj, SelectorError, matcher, translate

Pod = dict[str, Any]


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    """A ``v1.Status`` failure object, as the API server sends for errors."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def make_pod(name: str, *, namespace: str = "demo", node: str = "node-a", phase: str = "Running",
             ip: str | None = "10.0.0.1", labels: dict[str, str] | None = None,
             annotations: dict[str, str] | None = None, gpus: int | None = None) -> Pod:
    """A pod as the API server returns it (the fields the exporter reads, and valid otherwise)."""
    resources = {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus is not None else {}
    pod: Pod = {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}",
                     "labels": {"app": "vllm"} if labels is None else labels, "annotations": annotations or {}},
        "spec": {"nodeName": node, "containers": [
            {"name": "vllm", "image": "vllm/vllm-openai:v0.33.0", "resources": resources}]},
        "status": {"phase": phase},
    }
    if ip is not None:
        pod["status"]["podIP"] = ip
    return pod


@dataclass(frozen=True)
class Change:
    version: int
    kind: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    old: Pod | None
    new: Pod


class PodStore:
    """Pods with a resourceVersion counter and a change history (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.version = 1
        self.oldest = 1  # watches from an older version get 410 Gone
        self.pods: dict[tuple[str, str], Pod] = {}
        self.history: list[Change] = []
        self.listeners: list[Callable[[Change], None]] = []

    def _record(self, kind: str, old: Pod | None, new: Pod) -> int:
        change = Change(self.version, kind, old, new)
        self.history.append(change)
        for listener in list(self.listeners):
            listener(change)
        return self.version

    def put(self, pod: Pod) -> int:
        """Create or replace a pod; returns its new resourceVersion."""
        pod = copy.deepcopy(pod)
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        with self.lock:
            self.version += 1
            meta["resourceVersion"] = str(self.version)
            old = self.pods.get(key)
            self.pods[key] = pod
            return self._record("MODIFIED" if old else "ADDED", old, pod)

    def delete(self, namespace: str, name: str) -> int:
        with self.lock:
            old = self.pods.pop((namespace, name))
            self.version += 1
            gone = copy.deepcopy(old)
            gone["metadata"]["resourceVersion"] = str(self.version)
            return self._record("DELETED", old, gone)

    def bookmark(self) -> int:
        """Tell watchers (that allow bookmarks) the current version, without a change."""
        with self.lock:
            self.version += 1
            marker = {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": str(self.version)}}
            return self._record("BOOKMARK", None, marker)

    def compact(self) -> None:
        """Forget the history, as etcd compaction does: older watches now get 410 Gone."""
        with self.lock:
            self.history.clear()
            self.oldest = self.version


class FakeApiServer:
    """The pod store behind a real HTTP server on 127.0.0.1; start()/stop() keep the store."""

    def __init__(self, *, port: int | None = None, store: PodStore | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.store = store or PodStore()
        self.requests: list[tuple[str, dict[str, str]]] = []
        """(path, query) of every request served, in order."""
        self.injected: list[dict[str, Any]] = []
        """Status failures answered, one each, to the next requests (e.g. a 403 or a 500)."""
        self._open = threading.Event()
        self._open.set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closing: asyncio.Event | None = None
        self._queues: set[asyncio.Queue[Change | None]] = set()

    def start(self) -> FakeApiServer:
        started = threading.Event()
        errors: list[BaseException] = []
        self._loop = loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, args=(loop, started, errors), daemon=True)
        self._thread.start()
        if not started.wait(10) or errors:
            raise RuntimeError(f"fake API server did not start: {errors}")
        return self

    def stop(self) -> None:
        """Go away: open watches end, the port closes, the store stays."""
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._end_watches(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = self._thread = None

    def pause(self) -> None:
        """Hold every request from now on (recorded, then unanswered) until :meth:`resume`."""
        self._open.clear()

    def resume(self) -> None:
        self._open.set()

    def close_watches(self) -> None:
        """End every open watch cleanly, as the server does when ``timeoutSeconds`` runs out."""
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._end_watches(), self._loop).result(10)

    def watch_count(self, since: int = 0) -> int:
        return sum(1 for _, query in self.requests[since:] if query.get("watch") == "true")

    def list_count(self, since: int = 0) -> int:
        return sum(1 for _, query in self.requests[since:] if query.get("watch") != "true")

    async def _end_watches(self) -> None:
        for queue in list(self._queues):
            queue.put_nowait(None)

    def _serve(self, loop: asyncio.AbstractEventLoop, started: threading.Event,
               errors: list[BaseException]) -> None:
        asyncio.set_event_loop(loop)
        app = web.Application()
        app.router.add_get("/api/v1/pods", self._pods)
        app.router.add_get("/api/v1/namespaces/{namespace}/pods", self._pods)
        runner = web.AppRunner(app, shutdown_timeout=1.0)
        try:
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        except BaseException as exc:  # reported to start() in the test's thread
            errors.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    async def _pods(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        self.requests.append((request.path, query))
        while not self._open.is_set():  # a hung API server, or a test holding a request back
            await asyncio.sleep(0.02)
        if self.injected:
            failure = self.injected.pop(0)
            return web.json_response(failure, status=failure["code"])
        namespace = request.match_info.get("namespace")
        fields = query.get("fieldSelector", "")
        if namespace:
            fields = ",".join(filter(None, [fields, f"metadata.namespace={namespace}"]))
        try:
            match = matcher(query.get("labelSelector", ""), fields)
        except SelectorError as exc:
            return web.json_response(status(400, "BadRequest", str(exc)), status=400)
        if query.get("watch") in ("true", "1"):
            return await self._watch(request, query, match)
        with self.store.lock:
            items = [copy.deepcopy(p) for p in self.store.pods.values() if match(p)]
            version = self.store.version
        return web.json_response({"kind": "PodList", "apiVersion": "v1",
                                  "metadata": {"resourceVersion": str(version)}, "items": items})

    async def _watch(self, request: web.Request, query: dict[str, str],
                     match: Callable[[Obj], bool]) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Change | None] = asyncio.Queue()
        bookmarks = query.get("allowWatchBookmarks") == "true"
        since = query.get("resourceVersion", "") or "0"
        if not since.isdigit():
            return web.json_response(status(400, "BadRequest", f"invalid resourceVersion {since!r}"), status=400)
        with self.store.lock:  # the backlog and the live feed join without a gap
            if since == "0":  # no version: the current state as ADDED events first, as the real server does
                backlog = [Change(self.store.version, "ADDED", None, p) for p in self.store.pods.values()]
            elif int(since) < self.store.oldest:
                backlog = None
            else:
                backlog = [c for c in self.store.history if c.version > int(since)]
            listener = self._listener(loop, queue)
            self.store.listeners.append(listener)
        self._queues.add(queue)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        try:
            await response.prepare(request)
            if backlog is None:
                gone = status(410, "Expired", f"too old resource version: {since} ({self.store.oldest})")
                await response.write(json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n")
                return response
            async with asyncio.timeout(float(query.get("timeoutSeconds", "1800"))):
                for past in backlog:
                    await self._send(response, past, match, bookmarks)
                while (change := await queue.get()) is not None:
                    await self._send(response, change, match, bookmarks)
        except (TimeoutError, ConnectionError):
            pass  # timeoutSeconds ran out, or the client went away
        finally:
            with self.store.lock:
                self.store.listeners.remove(listener)
            self._queues.discard(queue)
        return response

    @staticmethod
    def _listener(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Change | None]) -> Callable[[Change], None]:
        def listen(change: Change) -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(queue.put_nowait, change)

        return listen

    @staticmethod
    async def _send(response: web.StreamResponse, change: Change, match: Callable[[Obj], bool],
                    bookmarks: bool) -> None:
        event: tuple[str, Obj] | None
        if change.kind == "BOOKMARK":
            event = ("BOOKMARK", change.new) if bookmarks else None
        else:
            event = translate(change.kind, change.old, change.new, match)
        if event is not None:
            await response.write(json.dumps({"type": event[0], "object": event[1]}).encode() + b"\n")


def core_v1(server: FakeApiServer | str) -> Any:
    """A real ``kubernetes`` CoreV1Api whose requests go to the fake server."""
    from kubernetes import client

    config = client.Configuration()
    config.host = server if isinstance(server, str) else server.url
    return client.CoreV1Api(client.ApiClient(config))
