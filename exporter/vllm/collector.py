"""The vLLM collector: scrape every target concurrently, keep its window, derive per pod.

``collect`` does the I/O (one task per target, each with its own deadline covering the
fetch *and* the read, so a slow or dead target never delays the others) and records each
reading in the target's history. ``derived`` runs after every collector of the cycle
finished (the GPU attribution fills ``ctx.pod_gpus`` for the cost), projects the histories
to series, and emits each target's scrape duration and error counts, so they are published
even in a cycle whose scrapes overran.

Failure is per target, never the process's: a read that overruns its deadline is that
target's ``timeout`` (its late result is dropped, and the target is not read again until
that read ends); numbers the derivations cannot carry (an overflow, a non-finite result)
are that target's ``derive`` error; a reading past the target's bounds is a ``limit`` error.
Each makes the target ``up 0`` with no other series.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field

import aiohttp

from exporter.collector import CycleContext, PodKey, Series
from exporter.vllm.limits import LimitError, TargetLimits, check
from exporter.vllm.reading import PodReading
from exporter.vllm.scrape import REASONS, ScrapeError, decode, fetch
from exporter.vllm.series import VllmPolicy, pod_series
from exporter.vllm.targets import Target, TargetSource
from exporter.vllm.window import History

log = logging.getLogger(__name__)

Decoder = Callable[[bytes], PodReading]


@dataclass
class TargetState:
    target: Target
    history: History
    up: bool = False
    models: tuple[str, ...] = ()
    scrape_seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    reading: Future[PodReading] | None = None
    """A read still running on the CPU thread after its deadline passed."""


class VllmCollector:
    name = "vllm"

    def __init__(self, *, source: TargetSource, session: aiohttp.ClientSession, policy: VllmPolicy,
                 scrape_timeout: float, max_body_bytes: int, cpu: Executor | None = None,
                 limits: TargetLimits | None = None, decoder: Decoder = decode) -> None:
        self._source = source
        self._session = session
        self._policy = policy
        self._timeout = scrape_timeout
        self._max_bytes = max_body_bytes
        self._states: dict[PodKey, TargetState] = {}
        self._cpu = cpu
        self._limits = limits or TargetLimits()
        self._decode = decoder

    async def collect(self, ctx: CycleContext) -> Sequence[Series]:
        targets = {t.key: t for t in self._source.targets()}
        for gone in set(self._states) - set(targets):
            del self._states[gone]  # pod deleted: forget its history and error counts
        for key, target in targets.items():
            state = self._states.get(key)
            if state is None or state.target != target:
                self._states[key] = TargetState(target, History(self._policy.window_seconds))
        await asyncio.gather(*(self._scrape(state, ctx.now) for state in self._states.values()))
        return []  # every series comes from ``derived``, after the cycle's collectors all ran

    async def _scrape(self, state: TargetState, now: float) -> None:
        started = time.perf_counter()
        try:
            if state.reading is not None and not state.reading.done():
                raise ScrapeError("timeout", "its previous read is still running")
            state.reading = None
            async with asyncio.timeout(self._timeout):
                body = await fetch(self._session, state.target.url, timeout=self._timeout,
                                   max_bytes=self._max_bytes)
                reading = await self._read(state, body)
        except TimeoutError:
            self._failed(state, "timeout", f"reading the body took longer than {self._timeout:.3g}s")
        except ScrapeError as exc:
            self._failed(state, exc.reason, str(exc))
        except LimitError as exc:
            self._failed(state, "limit", str(exc))
        except Exception as exc:  # a reader bug must cost one target, not the whole node's collection
            log.exception("reading %s/%s raised unexpectedly", state.target.namespace, state.target.pod)
            self._failed(state, "invalid", f"unexpected {type(exc).__name__}: {exc}")
        else:
            state.up = True
            state.models = tuple(reading.models())
            state.history.add(now, reading)
        finally:
            state.scrape_seconds = time.perf_counter() - started

    async def _read(self, state: TargetState, body: bytes) -> PodReading:
        """Parse, normalize and bound the body; on the CPU thread (when given) so the loop keeps serving."""
        if self._cpu is None:
            return self._checked(body)
        # Parsing is pure CPU and cannot be interrupted: on a deadline the await is cancelled and the
        # thread finishes alone; the future is kept so the target is not read again on top of it.
        state.reading = self._cpu.submit(self._checked, body)
        return await asyncio.wrap_future(state.reading)

    def _checked(self, body: bytes) -> PodReading:
        reading = self._decode(body)
        check(reading, self._limits)
        return reading

    @staticmethod
    def _failed(state: TargetState, reason: str, message: str) -> None:
        state.up = False
        state.errors[reason] += 1
        log.warning("scrape of %s/%s failed: %s", state.target.namespace, state.target.pod, message)

    def derived(self, ctx: CycleContext) -> list[Series]:
        """Per-pod series from each target's window (a down target gives only ``up 0``), then its health."""
        out: list[Series] = []
        for key, state in sorted(self._states.items()):
            out.extend(self._pod(key, state, ctx))
            labels = {"namespace": key[0], "pod": key[1]}
            out.append(Series("kvscale_exporter_target_scrape_duration_seconds", labels, state.scrape_seconds))
            for reason, count in state.errors.items():
                out.append(Series("kvscale_exporter_target_errors_total", {**labels, "reason": reason}, count))
        return out

    def _pod(self, key: PodKey, state: TargetState, ctx: CycleContext) -> list[Series]:
        gpus = ctx.pod_gpus.get(key) or state.target.gpus or self._policy.default_gpus_per_pod
        models = state.models or ("",)
        try:
            series = pod_series(state.target, up=state.up, models=models, history=state.history,
                                policy=self._policy, gpus=gpus)
            bad = next((s for s in series if not math.isfinite(s.value)), None)
            if bad is not None:
                raise ArithmeticError(f"{bad.family} came out as {bad.value}")
        except Exception as exc:  # the target's numbers (or a derivation bug) cost that target, not the process
            if not isinstance(exc, (ArithmeticError, ValueError)):
                log.exception("deriving %s/%s raised unexpectedly", key[0], key[1])
            self._failed(state, "derive", f"its values cannot be derived: {type(exc).__name__}: {exc}")
            return pod_series(state.target, up=False, models=models, history=state.history,
                              policy=self._policy, gpus=gpus)
        return series

    @property
    def ready(self) -> bool:
        """Whether the targets are known (the pod watch has listed once)."""
        return self._source.ready

    async def close(self) -> None:
        """Close the target source (the pod watch's thread); the HTTP session belongs to the caller."""
        await asyncio.to_thread(self._source.close)

    def __len__(self) -> int:
        return len(self._states)
