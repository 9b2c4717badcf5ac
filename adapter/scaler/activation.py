"""Demand that exists at zero replicas: a router's or gateway's queue, read like an exporter, or PromQL.

With no vLLM pod there is nothing for the exporters to report, so waking a workload from zero
needs a signal that lives elsewhere: the llm-d router's flow-control queue
(``llm_d_epp_flow_control_queue_size``), a gateway's pending requests. Sources are configured in
the adapter by name (``--keda-activation-source NAME=URL``; a trigger cannot make the adapter
fetch an arbitrary URL); a trigger picks one and names a metric and label matchers, or, with
``activationSource: prometheus``, gives a PromQL query for the adapter's ``--prometheus-url``.
The matching series are summed (a queue split by priority or by flow is one queue). No matching
series, or a source that cannot be read, is an error: unknown demand is never 0.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from adapter.provider import SourceUnavailableError
from adapter.scaler import NoDataError, SourceDownError
from adapter.scaler.trigger import PROMETHEUS_SOURCE, Activation
from adapter.selectors import Selector
from exporter.contract.exposition import Exposition, ExpositionError, parse_bytes

MAX_BODY = 16 * 1024 * 1024


class PromQL(Protocol):
    """What is used of :class:`adapter.promsource.PrometheusProvider`: its instant query."""

    async def query(self, expr: str) -> list[dict[str, Any]]: ...


def demand_from_exposition(exposition: Exposition, metric: str, labels: Selector) -> float:
    """The sum of the matching series (pure); NoDataError when none matches or none is finite."""
    values = [v for lbl, v in exposition.samples.get(metric, ()) if labels.matches(lbl) and math.isfinite(v)]
    if not values:
        raise NoDataError(f"no series {metric}{{{labels}}} in the activation source")
    return math.fsum(values)


def demand_from_promql(result: list[dict[str, Any]], query: str) -> float:
    """The sum of an instant vector's finite values (pure); an empty result is NoDataError."""
    values = []
    for entry in result:
        pair = entry.get("value")
        if isinstance(pair, list | tuple) and len(pair) == 2:
            value = float(str(pair[1]))
            if math.isfinite(value):
                values.append(value)
    if not values:
        raise NoDataError(f"activation query {query!r} returned no finite value")
    return math.fsum(values)


@dataclass
class _Read:
    at: float
    body: Exposition | None = None
    error: SourceDownError | None = None


class ActivationSources:
    """Reads the configured sources; one read of a URL serves every trigger for ``ttl`` seconds."""

    def __init__(self, *, session: aiohttp.ClientSession, urls: Mapping[str, str],
                 prometheus: PromQL | None = None, ttl: float = 0.5, timeout: float = 2.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._session = session
        self._urls = dict(urls)
        self._prometheus = prometheus  # the adapter's Prometheus client, reused
        self._ttl = ttl
        self._timeout = timeout
        self._monotonic = monotonic
        self._reads: dict[str, _Read] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._urls)

    @property
    def has_prometheus(self) -> bool:
        return self._prometheus is not None

    async def demand(self, spec: Activation) -> float:
        if spec.source == PROMETHEUS_SOURCE:
            return await self._promql(spec.query)
        url = self._urls.get(spec.source)
        if url is None:  # the trigger parser refuses unknown names; a reload could drop one
            raise SourceDownError(f"activation source {spec.source} is not configured")
        return demand_from_exposition(await self._exposition(spec.source, url), spec.metric, spec.labels)

    async def _promql(self, query: str) -> float:
        prom = self._prometheus
        if prom is None:
            raise SourceDownError("no --prometheus-url for activation queries")
        try:
            result = await prom.query(query)
        except SourceUnavailableError as exc:
            raise SourceDownError(f"activation query failed: {exc}") from exc
        return demand_from_promql(result, query)

    async def _exposition(self, name: str, url: str) -> Exposition:
        async with self._locks.setdefault(name, asyncio.Lock()):
            last = self._reads.get(name)
            if last is None or self._monotonic() - last.at >= self._ttl:
                last = self._reads[name] = await self._fetch(name, url)
        if last.error is not None:
            raise last.error
        assert last.body is not None
        return last.body

    async def _fetch(self, name: str, url: str) -> _Read:
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        try:
            async with self._session.get(url, timeout=timeout) as resp:
                if resp.status != 200:
                    raise SourceDownError(f"activation source {name} ({url}) answered HTTP {resp.status}")
                body = await resp.content.read(MAX_BODY + 1)
            if len(body) > MAX_BODY:
                raise SourceDownError(f"activation source {name} ({url}) is larger than {MAX_BODY} bytes")
            return _Read(self._monotonic(), body=parse_bytes(body))
        except SourceDownError as exc:
            return _Read(self._monotonic(), error=exc)
        except (aiohttp.ClientError, TimeoutError, ExpositionError) as exc:
            error = SourceDownError(f"activation source {name} ({url}): {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            return _Read(self._monotonic(), error=error)
