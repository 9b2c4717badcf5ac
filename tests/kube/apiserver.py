"""A fake Kubernetes API server at the HTTP seam, for the real ``kubernetes`` client.

It speaks the real wire protocol of list and watch for any collection (``/api/v1/pods``,
``/api/v1/namespaces/{ns}/pods``, ``/apis/resource.k8s.io/v1/resourceslices``, ...): a
list with ``metadata.resourceVersion`` (paged by ``limit``/``continue``), or with
``watch=true`` a stream of JSON lines ``{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR,
"object": ...}`` from a resourceVersion, filtered by label and field selectors (objects
entering or leaving the selection become ADDED/DELETED), ended after ``timeoutSeconds``.
A version older than the retained history gets the ERROR event with a 410 ``Expired``
Status, as etcd compaction causes. It also answers a single GET (a ConfigMap) and
SubjectAccessReviews.

Faults, each as a real server or network shows it: :meth:`FakeApiServer.stop` (refused),
``injected``/``failing``/``failing_for`` (Status answers such as 403 or 500), :meth:`pause` (requests held),
:meth:`close_watches` (the server ends watches), :meth:`drop_watches` (connections cut
mid-stream), :meth:`stall_watches` (watches go silent, a hung read), :meth:`error_watches`
(an ERROR event). The server runs its own event loop in a thread, so synchronous and async
tests can both drive it; its store outlives ``stop()``/``start()``.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from tests.conftest import free_port
from tests.kube.objects import Obj, status
from tests.kube.selectors import SelectorError, matcher, translate
from tests.kube.store import Change, ObjectStore

_END, _DROP, _STALL = "end", "drop", "stall"
Signal = Change | str | Obj | None  # an Obj is an ERROR Status to send
Matcher = Callable[[Mapping[str, Any]], bool]
_LIST_KINDS = {"pods": "PodList", "configmaps": "ConfigMapList", "nodes": "NodeList",
               "resourceslices": "ResourceSliceList"}


class FakeApiServer:
    """The object store behind a real HTTP server on 127.0.0.1; start()/stop() keep the store."""

    def __init__(self, *, port: int | None = None, store: ObjectStore | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.store = store or ObjectStore()
        self.requests: list[tuple[str, dict[str, str]]] = []
        """(path, query) of every request received, in order."""
        self.injected: list[Obj] = []
        """Status failures answered, one each, to the next requests (e.g. a 403 or a 500)."""
        self.failing: Obj | None = None
        """While set, every request is answered with this Status (an API server in trouble)."""
        self.failing_for: dict[str, Obj] = {}
        """Resource (plural), or "group/version/resource", -> a Status every request for it is answered with
        (e.g. RBAC missing for pods; "resource.k8s.io/v1/resourceslices" -> 404: a cluster before 1.34)."""
        self.allowed_users: set[str] = set()
        self.reviews: list[Obj] = []
        self._open = threading.Event()
        self._open.set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._flowing: asyncio.Event | None = None
        self._queues: set[asyncio.Queue[Signal]] = set()

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
        """Go away: open watches end, the port closes (connections are refused), the store stays."""
        if self._loop is None or self._thread is None:
            return
        self._open.set()
        self._signal(None)
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
        self._signal(_END)

    def drop_watches(self) -> None:
        """Cut every open watch's connection mid-stream (no end of the chunked body): a dropped watch."""
        self._signal(_DROP)

    def error_watches(self, failure: Obj) -> None:
        """Send an ERROR event with ``failure`` (a Status) on every open watch, which then ends."""
        self._signal(failure)

    def stall_watches(self, stalled: bool = True) -> None:
        """Open watches, and new ones after their headers, go silent (no bytes, no end) until un-stalled."""
        if stalled:
            self._signal(_STALL)
        elif self._loop is not None and self._flowing is not None:
            self._loop.call_soon_threadsafe(self._flowing.set)

    def watch_count(self, since: int = 0) -> int:
        return sum(1 for _, query in self.requests[since:] if query.get("watch") == "true")

    def list_count(self, since: int = 0) -> int:
        return sum(1 for path, query in self.requests[since:] if query.get("watch") != "true"
                   and not path.endswith("subjectaccessreviews"))

    def open_watches(self) -> int:
        return len(self._queues)

    def _signal(self, signal: Signal) -> None:
        loop = self._loop
        if loop is None:
            return

        async def send() -> None:
            if self._flowing is not None and signal is None:
                self._flowing.set()  # a stalled watch must see the end too
            elif self._flowing is not None and signal == _STALL:
                self._flowing.clear()
            for queue in list(self._queues):
                queue.put_nowait(signal)

        asyncio.run_coroutine_threadsafe(send(), loop).result(10)

    def _serve(self, loop: asyncio.AbstractEventLoop, started: threading.Event,
               errors: list[BaseException]) -> None:
        asyncio.set_event_loop(loop)
        self._flowing = asyncio.Event()
        self._flowing.set()
        app = web.Application()
        app.router.add_post("/apis/authorization.k8s.io/v1/subjectaccessreviews", self._review)
        for prefix in ("/api/{version}", "/apis/{group}/{version}"):
            app.router.add_get(prefix + "/{resource}", self._collection)
            app.router.add_get(prefix + "/namespaces/{namespace}/{resource}", self._collection)
            app.router.add_get(prefix + "/namespaces/{namespace}/{resource}/{name}", self._object)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
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

    async def _admit(self, request: web.Request) -> web.Response | None:
        """Record the request, hold it while paused; a Status answer when a failure is due."""
        self.requests.append((request.path, dict(request.query)))
        while not self._open.is_set():  # a hung API server, or a test holding a request back
            await asyncio.sleep(0.02)
        failure = self.injected.pop(0) if self.injected else self.failing
        info = request.match_info
        versioned = f'{info.get("group", "")}/{info.get("version", "")}/{info.get("resource", "")}'
        failure = failure or self.failing_for.get(info.get("resource", "")) or self.failing_for.get(versioned)
        return None if failure is None else web.json_response(failure, status=failure["code"])

    async def _object(self, request: web.Request) -> web.Response:
        if (refused := await self._admit(request)) is not None:
            return refused
        info = request.match_info
        found = self.store.get(info["resource"], info["namespace"], info["name"])
        if found is None:
            return web.json_response(status(404, "NotFound", f'{info["resource"]} "{info["name"]}" not found'),
                                     status=404)
        return web.json_response(found)

    async def _review(self, request: web.Request) -> web.Response:
        if (refused := await self._admit(request)) is not None:
            return refused
        body: Obj = await request.json()
        self.reviews.append(body)
        body["status"] = {"allowed": body["spec"]["user"] in self.allowed_users}
        return web.json_response(body, status=201)

    async def _collection(self, request: web.Request) -> web.StreamResponse:
        if (refused := await self._admit(request)) is not None:
            return refused
        query, resource = request.query, request.match_info["resource"]
        namespace = request.match_info.get("namespace")
        fields = query.get("fieldSelector", "")
        if namespace:
            fields = ",".join(filter(None, [fields, f"metadata.namespace={namespace}"]))
        try:
            match = matcher(query.get("labelSelector", ""), fields, resource)
        except SelectorError as exc:
            return web.json_response(status(400, "BadRequest", str(exc)), status=400)
        if query.get("watch") in ("true", "1"):
            return await self._watch(request, resource, match)
        return self._list(resource, match, query.get("limit"), query.get("continue"))

    def _list(self, resource: str, match: Matcher, limit: str | None,
              token: str | None) -> web.Response:
        start, version = 0, None
        if token:
            start, version = json.loads(base64.b64decode(token))
            if version < self.store.oldest:
                gone = status(410, "Expired", "The provided continue parameter is too old to display a "
                                              "consistent list result.")
                return web.json_response(gone, status=410)
        items, current = self.store.select(resource, match)
        version = version or current
        end = len(items) if not limit else start + int(limit)
        meta: Obj = {"resourceVersion": str(version)}
        if end < len(items):
            meta["continue"] = base64.b64encode(json.dumps([end, version]).encode()).decode()
        kind = _LIST_KINDS.get(resource, "List")
        return web.json_response({"kind": kind, "apiVersion": "v1", "metadata": meta, "items": items[start:end]})

    async def _watch(self, request: web.Request, resource: str,
                     match: Matcher) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        assert self._flowing is not None
        queue: asyncio.Queue[Signal] = asyncio.Queue()
        bookmarks = request.query.get("allowWatchBookmarks") == "true"
        since = request.query.get("resourceVersion", "") or "0"
        if not since.isdigit():
            return web.json_response(status(400, "BadRequest", f"invalid resourceVersion {since!r}"), status=400)
        backlog, listener = self.store.subscribe(resource, int(since), self._listener(loop, queue))
        self._queues.add(queue)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        seconds = float(request.query.get("timeoutSeconds", "1800"))
        try:
            await response.prepare(request)
            if backlog is None:
                gone = status(410, "Expired", f"too old resource version: {since} ({self.store.oldest})")
                await _event(response, "ERROR", gone)
                return response
            async with asyncio.timeout(seconds) as deadline:
                if not self._flowing.is_set():
                    await _stall(deadline, self._flowing, seconds)
                for past in backlog:
                    await _send(response, past, match, bookmarks)
                while (signal := await queue.get()) is not None and signal != _END:
                    if signal == _DROP:
                        assert request.transport is not None
                        request.transport.abort()
                        return response
                    if signal == _STALL:
                        await _stall(deadline, self._flowing, seconds)
                    elif isinstance(signal, Change):
                        await _send(response, signal, match, bookmarks)
                    elif isinstance(signal, dict):
                        await _event(response, "ERROR", signal)
                        return response
        except (TimeoutError, ConnectionError):
            pass  # timeoutSeconds ran out, or the client went away
        finally:
            self.store.unsubscribe(listener)
            self._queues.discard(queue)
        return response

    @staticmethod
    def _listener(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Signal]) -> Callable[[Change], None]:
        def listen(change: Change) -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(queue.put_nowait, change)

        return listen


async def _stall(deadline: asyncio.Timeout, flowing: asyncio.Event, seconds: float) -> None:
    """Silence: no bytes and no timeout until the test lets the watch flow again."""
    if flowing.is_set():
        return
    deadline.reschedule(None)
    await flowing.wait()
    deadline.reschedule(asyncio.get_running_loop().time() + seconds)


async def _event(response: web.StreamResponse, kind: str, obj: Obj) -> None:
    await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")


async def _send(response: web.StreamResponse, change: Change, match: Matcher, bookmarks: bool) -> None:
    event: tuple[str, Mapping[str, Any]] | None
    if change.kind == "BOOKMARK":
        event = ("BOOKMARK", change.new) if bookmarks else None
    else:
        event = translate(change.kind, change.old, change.new, match)
    if event is not None:
        await _event(response, event[0], copy.deepcopy(dict(event[1])))

