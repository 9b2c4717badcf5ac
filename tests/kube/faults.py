"""The list+watch faults, as scenarios every user of the shared watch must survive.

Each scenario drives the fake API server (real HTTP, the real ``kubernetes`` client)
through one fault and checks what the user sees through its own view: the exporter's
targets, the adapter's pod inventory. A user test module parametrizes over
:data:`SCENARIOS` with a :data:`Start` that builds its user over a server.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exporter.contract.kubewatch import KubeWatch, WatchTimings
from tests.kube.apiserver import FakeApiServer
from tests.kube.objects import make_pod, status

# Short enough for tests, long enough for a loaded CI machine. The hung-read scenario shortens the watch.
FAST = WatchTimings(connect=2.0, read=2.0, watch=30, watch_read_slack=1.0, initial_backoff=0.05, max_backoff=0.2,
                    min_watch=0.05)


@dataclass
class Subject:
    """One user of the watch, started: its watch (counters, readiness) and the pod names its view shows."""

    watch: KubeWatch[Any, Any]
    names: Callable[[], set[str]]


Start = Callable[[FakeApiServer, WatchTimings], Subject]
"""Builds and starts a user over the server with these timings and no jitter (``lambda: 0.0``: the
backoff is then half its nominal value); the caller's fixture stops it."""


def eventually(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll ``check`` until true; generous, since a loaded CI machine is slow, not wrong."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def _started(server: FakeApiServer, start: Start, *names: str, timings: WatchTimings = FAST) -> Subject:
    for name in names:
        server.store.put(make_pod(name, ip=f"10.0.0.{len(name)}"))
    subject = start(server, timings)
    assert subject.watch.wait_ready(20)
    eventually(lambda: server.open_watches() == 1, "the watch to open")
    return subject


def expired_version_relists_without_losing_objects(server: FakeApiServer, start: Start) -> None:
    subject = _started(server, start, "a", "b")
    assert subject.names() == {"a", "b"}
    # Hold the next watch request while history it has not seen is compacted away.
    server.pause()
    watches = server.watch_count()
    server.close_watches()
    eventually(lambda: server.watch_count() > watches, "the watch to be re-opened")
    server.store.delete("demo", "a")
    server.store.put(make_pod("c", ip="10.0.0.3"))
    server.store.compact()
    published = subject.watch.generation
    server.resume()
    eventually(lambda: subject.names() == {"b", "c"}, "the relist after 410 Gone")
    # One new view, the relisted one: b was never dropped on the way.
    assert subject.watch.generation == published + 1
    assert (subject.watch.expirations, subject.watch.relists, subject.watch.failures) == (1, 2, 0)
    server.store.put(make_pod("d", ip="10.0.0.4"))  # the watch after the relist delivers changes
    eventually(lambda: subject.names() == {"b", "c", "d"}, "d through the new watch")


def dropped_watch_reconnects_from_its_version(server: FakeApiServer, start: Start) -> None:
    subject = _started(server, start, "a")
    watches = server.watch_count()
    server.drop_watches()
    server.store.put(make_pod("b", ip="10.0.0.2"))  # made while no watch is open
    eventually(lambda: subject.names() == {"a", "b"}, "b after the reconnect")
    server.store.delete("demo", "a")
    eventually(lambda: subject.names() == {"b"}, "a's deletion through the new watch")
    assert subject.watch.failures == 1
    assert subject.watch.relists == 1  # resumed from the last version: no relist needed
    assert server.watch_count() == watches + 1


def hung_read_times_out_and_recovers(server: FakeApiServer, start: Start) -> None:
    timings = WatchTimings(connect=2.0, read=0.5, watch=1, watch_read_slack=0.5, initial_backoff=0.05,
                           max_backoff=0.2, min_watch=0.05)
    subject = _started(server, start, "a", timings=timings)
    server.stall_watches()
    server.store.put(make_pod("b", ip="10.0.0.2"))
    eventually(lambda: subject.watch.failures >= 2, "the read timeout to fire on silent watches")
    assert "timed out" in str(subject.watch.last_error).lower()
    assert subject.names() == {"a"} and subject.watch.ready  # the last view is kept meanwhile
    server.stall_watches(False)
    eventually(lambda: subject.names() == {"a", "b"}, "b once the API server answers again")
    server.store.put(make_pod("c", ip="10.0.0.3"))
    eventually(lambda: subject.names() == {"a", "b", "c"}, "c through a working watch")
    assert subject.watch.relists == 1


def hung_list_times_out_and_recovers(server: FakeApiServer, start: Start) -> None:
    server.store.put(make_pod("a"))
    server.pause()
    timings = WatchTimings(connect=2.0, read=0.3, watch=30, watch_read_slack=1.0, initial_backoff=0.05,
                           max_backoff=0.2, min_watch=0.05)
    subject = start(server, timings)
    eventually(lambda: subject.watch.failures >= 2, "list requests to time out")
    assert not subject.watch.ready and subject.names() == set()
    server.resume()
    assert subject.watch.wait_ready(20)
    assert subject.names() == {"a"}


def api_refusing_keeps_the_last_view_and_recovers(server: FakeApiServer, start: Start) -> None:
    subject = _started(server, start, "a", "b")
    server.stop()
    eventually(lambda: subject.watch.failures >= 3, "failed attempts while the API server is away")
    assert subject.names() == {"a", "b"} and subject.watch.ready
    eventually(lambda: subject.watch.backoff == FAST.max_backoff * 0.5, "the backoff to grow to its cap")
    server.store.delete("demo", "a")  # changes made while it was away arrive once it is back
    server.store.put(make_pod("c", ip="10.0.0.3"))
    server.start()
    eventually(lambda: subject.names() == {"b", "c"}, "the changes once the API server is back")
    eventually(lambda: subject.watch.last_error is None, "the error to clear")


def api_erroring_keeps_the_last_view_and_recovers(server: FakeApiServer, start: Start) -> None:
    subject = _started(server, start, "a")
    server.failing = status(500, "InternalError", "etcdserver: request timed out")
    server.close_watches()
    eventually(lambda: subject.watch.failures >= 3, "500 answers to the re-opened watch")
    assert subject.watch.last_error == "Kubernetes API answered 500 Internal Server Error"
    assert subject.names() == {"a"} and subject.watch.ready
    eventually(lambda: subject.watch.backoff == FAST.max_backoff * 0.5, "the backoff to grow to its cap")
    server.store.put(make_pod("b", ip="10.0.0.2"))
    server.failing = None
    eventually(lambda: subject.names() == {"a", "b"}, "b once the API server answers again")
    assert subject.watch.backoff == 0.0


def error_event_restarts_the_watch(server: FakeApiServer, start: Start) -> None:
    subject = _started(server, start, "a")
    server.error_watches(status(500, "InternalError", "etcd leader changed"))
    eventually(lambda: subject.watch.failures == 1, "the ERROR event to count")
    assert "etcd leader changed" in str(subject.watch.last_error)
    server.store.put(make_pod("b", ip="10.0.0.2"))
    eventually(lambda: subject.names() == {"a", "b"}, "b through the re-opened watch")
    assert subject.watch.relists == 1


def stop_cuts_an_open_watch(server: FakeApiServer, start: Start) -> None:
    timings = WatchTimings(connect=2.0, read=2.0, watch=600, watch_read_slack=30.0, initial_backoff=0.05,
                           max_backoff=0.2, min_watch=0.05)
    subject = _started(server, start, "a", timings=timings)
    began = time.monotonic()
    assert subject.watch.stop(timeout=10)
    assert time.monotonic() - began < 5  # generous: the watch had 10 minutes to run
    assert not subject.watch.is_alive()
    assert subject.watch.failures == 0  # being stopped is not a failure


SCENARIOS = [expired_version_relists_without_losing_objects, dropped_watch_reconnects_from_its_version,
             hung_read_times_out_and_recovers, hung_list_times_out_and_recovers,
             api_refusing_keeps_the_last_view_and_recovers, api_erroring_keeps_the_last_view_and_recovers,
             error_event_restarts_the_watch, stop_cuts_an_open_watch]
