"""The ``direct`` provider: an in-memory view of the exporters' /metrics, refreshed every few seconds.

Reading the node exporters directly puts a value in front of the HPA within
seconds of vLLM reporting it, with no Prometheus in the path. The refresh loop is
the only I/O; :func:`read_exposition` turns one exporter's body into per-pod
snapshots and is pure. A pod the exporter marks ``kvscale_vllm_up 0`` (model still
loading, target down) is not serving and is left out; so is a pod whose last
sample is older than ``max_age``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import aiohttp

from adapter.endpoints import EndpointSource
from adapter.provider import (
    DEFAULT_QUANTILE,
    MetricInfo,
    MetricQuery,
    PodValue,
    SourceUnavailableError,
    UnknownMetricError,
    effective_selector,
    pick_one,
    served_metrics,
)
from exporter.contract import catalog
from exporter.contract.exposition import ExpositionError, Labels, parse_bytes, selection

log = logging.getLogger(__name__)

_VLLM_NAMES = tuple(f.name for f in catalog.of_subsystem("vllm"))
_ONLY = selection(_VLLM_NAMES)
_UP = "kvscale_vllm_up"
_THREAD_PARSE_BYTES = 256 * 1024


@dataclass
class PodSnapshot:
    """One pod's series as last read: metric name -> [(labels, value)]."""

    series: dict[str, list[tuple[Labels, float]]] = field(default_factory=dict)
    up: bool = True
    wall: float = 0.0  # Unix time of the read, reported as the sample timestamp
    mono: float = 0.0  # monotonic time of the read, for max-age checks


def read_exposition(body: bytes, *, wall: float, mono: float) -> dict[tuple[str, str], PodSnapshot]:
    """Per-pod snapshots from an exporter body; raises ExpositionError on a malformed body."""
    exposition = parse_bytes(body, only=_ONLY)
    pods: dict[tuple[str, str], PodSnapshot] = {}
    for name, samples in exposition.samples.items():
        for labels, value in samples:
            key = (labels.get("namespace", ""), labels.get("pod", ""))
            if not key[0] or not key[1]:
                continue
            snap = pods.get(key)
            if snap is None:
                snap = pods[key] = PodSnapshot(wall=wall, mono=mono)
            if name == _UP:
                snap.up = value == 1.0
            else:
                snap.series.setdefault(name, []).append((labels, value))
    return pods


def _merge(views: Iterable[Mapping[tuple[str, str], PodSnapshot]]) -> dict[tuple[str, str], PodSnapshot]:
    """One index over every exporter's view; a pod seen by two exporters keeps the newest read."""
    index: dict[tuple[str, str], PodSnapshot] = {}
    for view in views:
        for key, snap in view.items():
            best = index.get(key)
            if best is None or snap.mono > best.mono:
                index[key] = snap
    return index


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass(frozen=True)
class DirectSettings:
    refresh_interval: float = 2.0
    max_age: float = 4.0
    timeout: float = 2.0
    window_seconds: int = 60
    concurrency: int = 4
    default_quantile: str = DEFAULT_QUANTILE  # served when the metric selector names no quantile (policy)


class DirectProvider:
    """Implements :class:`adapter.provider.MetricsProvider` over a set of exporter endpoints."""

    def __init__(self, *, endpoints: EndpointSource, session: aiohttp.ClientSession,
                 settings: DirectSettings, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._endpoints = endpoints
        self._session = session
        self._settings = settings
        self._monotonic = monotonic
        self._views: dict[str, dict[tuple[str, str], PodSnapshot]] = {}
        self._index: dict[tuple[str, str], PodSnapshot] = {}
        self._errors: dict[str, str] = {}
        self._outage: str | None = "not refreshed yet"
        self._metrics = {m.name: m for m in served_metrics(settings.window_seconds)}
        self.generation = 0  # bumped on every view change: answers computed from one view may be reused
        # Refresh waiters as (their loop, future): the refresh may run on a thread and loop of its own.
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()
        self._waiters_lock = threading.Lock()

    def list_metrics(self) -> Sequence[MetricInfo]:
        return tuple(self._metrics.values())

    @property
    def ready(self) -> bool:
        return self._outage is None

    async def run(self) -> None:
        """Refresh forever; each failure is logged and leaves the pods of that endpoint to age out."""
        while True:
            started = self._monotonic()
            try:
                await self.refresh_once()
            except Exception:  # a bug must not end the loop: the view would silently freeze, then age out
                log.exception("refresh of the exporter view failed")
            await asyncio.sleep(max(0.0, self._settings.refresh_interval - (self._monotonic() - started)))

    async def run_in_thread(self) -> None:
        """:meth:`run` on a thread and event loop of its own, with its own HTTP session, until cancelled.

        Under a flood of API requests the serving loop runs a thousand callbacks per turn: reads
        scheduled there overran their timeout and every pod aged out (404s for everyone). Here the
        refresh only competes for the GIL, which it gets every few milliseconds.
        """
        loop = asyncio.new_event_loop()
        tasks: list[asyncio.Task[None]] = []

        async def refresh() -> None:
            async with aiohttp.ClientSession() as session:
                self._session = session
                await self.run()

        def main() -> None:
            asyncio.set_event_loop(loop)
            tasks.append(loop.create_task(refresh()))
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(tasks[0])
            loop.close()

        thread = threading.Thread(target=main, name="direct-refresh", daemon=True)
        thread.start()
        try:
            await asyncio.Event().wait()
        finally:
            loop.call_soon_threadsafe(lambda: [t.cancel() for t in tasks])
            await asyncio.to_thread(thread.join, 10)

    async def refresh_once(self) -> None:
        try:
            urls = await self._endpoints.endpoints()
        except Exception as exc:  # discovery failure: keep the last view, let it age out
            self._set_outage(f"exporter discovery failed: {exc}")
            return
        # A few reads at a time: 60 exporters answering at once would hold the event loop for tens of
        # milliseconds, and every HPA request arriving then would wait behind them.
        gate = asyncio.Semaphore(self._settings.concurrency)

        async def fetch(url: str) -> dict[tuple[str, str], PodSnapshot] | None:
            async with gate:
                view = await self._fetch(url)
                await asyncio.sleep(0)  # let queued API requests run between parses
                return view

        results = await asyncio.gather(*(fetch(url) for url in urls))
        self._views = {url: view for url, view in zip(urls, results, strict=True) if view is not None}
        self._index = _merge(self._views.values())
        self._errors = {url: reason for url, reason in self._errors.items() if url in self._views or url in urls}
        failed = [url for url in urls if url in self._errors]
        if not urls:
            self._set_outage("no exporter endpoints found")
        elif len(failed) == len(urls):
            self._set_outage("every exporter failed: " + "; ".join(f"{u}: {self._errors[u]}" for u in failed))
        else:
            if self._outage is not None:
                log.info("direct source available: %d of %d exporters answered", len(urls) - len(failed), len(urls))
            self._outage = None
        self._bump()

    def _set_outage(self, cause: str) -> None:
        if cause != self._outage:
            log.error("direct source unavailable: %s", cause)
        self._outage = cause
        self._bump()

    def _bump(self) -> None:
        self.generation += 1
        with self._waiters_lock:
            waiters, self._waiters = self._waiters, set()
        for loop, future in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_wake, future)

    async def wait_changed(self) -> None:
        """Return after the next refresh: push consumers (KEDA's StreamIsActive) react to a new view at once,
        from whichever loop they wait on."""
        waiter = (asyncio.get_running_loop(), asyncio.get_running_loop().create_future())
        with self._waiters_lock:
            self._waiters.add(waiter)
        try:
            await waiter[1]
        finally:
            with self._waiters_lock:
                self._waiters.discard(waiter)

    async def _fetch(self, url: str) -> dict[tuple[str, str], PodSnapshot] | None:
        timeout = aiohttp.ClientTimeout(total=self._settings.timeout)
        try:
            async with self._session.get(url, timeout=timeout) as resp:
                if resp.status != 200:
                    raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status,
                                                      message=f"HTTP {resp.status}")
                body = await resp.read()
            wall, mono = time.time(), self._monotonic()
            if len(body) > _THREAD_PARSE_BYTES:
                # A large body is parsed in a thread so requests are served meanwhile; small ones inline,
                # where a thread would cost more in GIL hand-offs than the parse itself.
                view = await asyncio.to_thread(read_exposition, body, wall=wall, mono=mono)
            else:
                view = read_exposition(body, wall=wall, mono=mono)
        except (aiohttp.ClientError, TimeoutError, ExpositionError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if self._errors.get(url) != reason:
                log.warning("exporter %s unreadable: %s", url, reason)
            self._errors[url] = reason
            return self._views.get(url)  # kept only until max_age passes; never refreshed in place
        self._errors.pop(url, None)
        return view

    def _value(self, namespace: str, pod: str, info: MetricInfo, query: MetricQuery,
               now: float) -> PodValue | None:
        snap = self._index.get((namespace, pod))
        if snap is None or not snap.up or now - snap.mono > self._settings.max_age:
            return None
        selector = effective_selector(info, query.selector, self._settings.default_quantile)
        matching = [v for labels, v in snap.series.get(info.name, ()) if selector.matches(labels)]
        value = pick_one(namespace, pod, info.name, matching)
        if value is None or math.isnan(value):  # NaN is not a value
            return None
        return PodValue(namespace, pod, value, snap.wall, info.window_seconds)

    def _info(self, query: MetricQuery) -> MetricInfo:
        info = self._metrics.get(query.name)
        if info is None:
            raise UnknownMetricError(query.name)
        return info

    async def pod_value(self, namespace: str, pod: str, query: MetricQuery) -> PodValue | None:
        values = await self.pod_values(namespace, [pod], query)
        return values[0] if values else None

    async def pod_values(self, namespace: str, pods: Sequence[str], query: MetricQuery) -> list[PodValue]:
        info = self._info(query)
        now = self._monotonic()
        out = [v for pod in pods if (v := self._value(namespace, pod, info, query, now)) is not None]
        if not out and self._outage is not None:
            raise SourceUnavailableError(self._outage)
        return out

    def snapshot_ages(self) -> Mapping[str, float]:
        """Seconds since each endpoint was last read successfully (self-metrics)."""
        now = self._monotonic()
        return {url: now - max((s.mono for s in view.values()), default=now) for url, view in self._views.items()}
