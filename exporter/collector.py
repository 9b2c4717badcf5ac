"""The collector contract and the runner that turns a collector's failure into data.

A collector does its I/O in ``collect`` and returns plain series named from the
catalog. The runner times it and records ``kvscale_exporter_collector_success`` and
``..._duration_seconds`` for it; an exception becomes ``success 0`` with its cause
logged, never a failed scrape (node_exporter's rule).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from exporter.contract.catalog import BY_NAME

log = logging.getLogger(__name__)

PodKey = tuple[str, str]
"""(namespace, pod)."""


@dataclass(frozen=True, slots=True)
class Series:
    """One sample of a catalog family."""

    family: str
    labels: Mapping[str, str]
    value: float


@dataclass
class CycleContext:
    """What one collection cycle shares between collectors.

    ``pod_gpus`` is filled by the GPU attribution collector (when enabled) before the
    vLLM derivation runs, so the cost per token uses the GPUs really attributed to a pod
    (fractional for MIG devices and time-sliced GPUs).
    """

    now: float
    pod_gpus: dict[PodKey, float] = field(default_factory=dict)


class CollectorError(Exception):
    """A collector could not produce its series; the message is logged with the cause chained."""


class Collector(Protocol):
    """One source of series. ``collect`` may raise; the runner records the failure."""

    name: str

    async def collect(self, ctx: CycleContext) -> Sequence[Series]: ...

    async def close(self) -> None:
        """Release what the collector holds (NVML, sockets, watches); called once, at shutdown."""
        ...


@dataclass(frozen=True)
class CollectorRun:
    """The outcome of one collector in one cycle."""

    name: str
    series: Sequence[Series]
    success: bool
    duration_seconds: float


async def run_collector(collector: Collector, ctx: CycleContext, *, timeout: float) -> CollectorRun:
    """Run one collector with a deadline; failures become ``success=False`` and no series."""
    started = time.perf_counter()
    try:
        series = await asyncio.wait_for(collector.collect(ctx), timeout)
        ok = True
    except TimeoutError:
        log.error("collector %s timed out after %.3fs", collector.name, timeout)
        series, ok = (), False
    except Exception as exc:  # a collector bug must not stop the exporter
        log.error("collector %s failed: %s", collector.name, exc, exc_info=not isinstance(exc, CollectorError))
        series, ok = (), False
    return CollectorRun(collector.name, series, ok, time.perf_counter() - started)


def health_series(runs: Sequence[CollectorRun]) -> list[Series]:
    """The per-collector success and duration series."""
    out: list[Series] = []
    for run in runs:
        labels = {"collector": run.name}
        out.append(Series("kvscale_exporter_collector_success", labels, 1.0 if run.success else 0.0))
        out.append(Series("kvscale_exporter_collector_duration_seconds", labels, run.duration_seconds))
    return out


def check_series(series: Sequence[Series]) -> None:
    """Raise if a series names a family or label outside the catalog (a programming error)."""
    for s in series:
        fam = BY_NAME.get(s.family)
        if fam is None:
            raise ValueError(f"series of unknown family {s.family!r}")
        extra = set(s.labels) - set(fam.labels)
        if extra:
            raise ValueError(f"{s.family}: labels {sorted(extra)} are not in the catalog")
