"""The vLLM collector: scrape every target concurrently, keep its window, derive per pod.

``collect`` does the I/O (one task per target, each with its own deadline, so a slow
or dead target never delays the others) and records each reading in the target's
history. ``derived`` runs after every collector of the cycle finished (the GPU
attribution fills ``ctx.pod_gpus`` for the cost) and projects the histories to series.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

import aiohttp

from exporter.collector import CycleContext, PodKey, Series
from exporter.vllm.reading import PodReading
from exporter.vllm.scrape import REASONS, ScrapeError, decode, fetch
from exporter.vllm.series import VllmPolicy, pod_series
from exporter.vllm.targets import Target, TargetSource
from exporter.vllm.window import History

log = logging.getLogger(__name__)


@dataclass
class TargetState:
    target: Target
    history: History
    up: bool = False
    models: tuple[str, ...] = ()
    scrape_seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))


class VllmCollector:
    name = "vllm"

    def __init__(self, *, source: TargetSource, session: aiohttp.ClientSession, policy: VllmPolicy,
                 scrape_timeout: float, max_body_bytes: int, cpu: Executor | None = None) -> None:
        self._source = source
        self._session = session
        self._policy = policy
        self._timeout = scrape_timeout
        self._max_bytes = max_body_bytes
        self._states: dict[PodKey, TargetState] = {}
        self._cpu = cpu

    async def collect(self, ctx: CycleContext) -> Sequence[Series]:
        targets = {t.key: t for t in self._source.targets()}
        for gone in set(self._states) - set(targets):
            del self._states[gone]  # pod deleted: forget its history and error counts
        for key, target in targets.items():
            state = self._states.get(key)
            if state is None or state.target != target:
                self._states[key] = TargetState(target, History(self._policy.window_seconds))
        await asyncio.gather(*(self._scrape(state, ctx.now) for state in self._states.values()))
        out: list[Series] = []
        for (namespace, pod), state in sorted(self._states.items()):
            labels = {"namespace": namespace, "pod": pod}
            out.append(Series("kvscale_exporter_target_scrape_duration_seconds", labels, state.scrape_seconds))
            for reason, count in state.errors.items():
                out.append(Series("kvscale_exporter_target_errors_total", {**labels, "reason": reason}, count))
        return out

    async def _scrape(self, state: TargetState, now: float) -> None:
        started = time.perf_counter()
        try:
            body = await fetch(self._session, state.target.url, timeout=self._timeout, max_bytes=self._max_bytes)
            # Parsing is pure CPU: on the one CPU worker thread (when given), so the event loop
            # keeps answering /metrics during a cycle and competes with one thread, not eight.
            reading: PodReading = (decode(body) if self._cpu is None
                                   else await asyncio.get_running_loop().run_in_executor(self._cpu, decode, body))
        except ScrapeError as exc:
            self._failed(state, exc.reason, str(exc))
        except Exception as exc:  # a reader bug must cost one target, not the whole node's collection
            log.exception("reading %s/%s raised unexpectedly", state.target.namespace, state.target.pod)
            self._failed(state, "invalid", f"unexpected {type(exc).__name__}: {exc}")
        else:
            state.up = True
            state.models = tuple(reading.models())
            state.history.add(now, reading)
        finally:
            state.scrape_seconds = time.perf_counter() - started

    @staticmethod
    def _failed(state: TargetState, reason: str, message: str) -> None:
        state.up = False
        state.errors[reason] += 1
        log.warning("scrape of %s/%s failed: %s", state.target.namespace, state.target.pod, message)

    def derived(self, ctx: CycleContext) -> list[Series]:
        """Per-pod series from each target's window; a down target gives only ``up 0``."""
        out: list[Series] = []
        for key, state in sorted(self._states.items()):
            gpus = ctx.pod_gpus.get(key) or state.target.gpus or self._policy.default_gpus_per_pod
            out.extend(pod_series(state.target, up=state.up, models=state.models or ("",),
                                  history=state.history, policy=self._policy, gpus=gpus))
        return out

    @property
    def ready(self) -> bool:
        """Whether the targets are known (the pod watch has listed once)."""
        return self._source.ready

    async def close(self) -> None:
        """Close the target source (the pod watch's thread); the HTTP session belongs to the caller."""
        await asyncio.to_thread(self._source.close)

    def __len__(self) -> int:
        return len(self._states)
