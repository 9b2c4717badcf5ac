"""The KEDA scaler assembled from the adapter's settings, over the adapter's own provider and service.

Called by :mod:`adapter.runner` when ``--keda-port`` is set. Nothing here reads data of its own:
values come from the service the custom-metrics API uses, refresh notifications from the direct
provider (a ``prometheus`` source is asked per call, so streams re-check every refresh interval).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiohttp
import grpc

from adapter.promsource import PrometheusProvider, PrometheusSettings
from adapter.provider import MetricsProvider
from adapter.scaler.activation import ActivationSources, PromQL
from adapter.scaler.demand import Demand
from adapter.scaler.server import ScalerEndpoint, start
from adapter.scaler.servicer import CallerCheck, ExternalScaler
from adapter.service import MetricsService
from adapter.settings import AdapterSettings
from adapter.tls import TLSFiles

log = logging.getLogger(__name__)


def _promql(settings: AdapterSettings, provider: MetricsProvider, session: aiohttp.ClientSession) -> PromQL | None:
    if isinstance(provider, PrometheusProvider):
        return provider
    if settings.prometheus_url is None:
        return None
    return PrometheusProvider(session=session, settings=PrometheusSettings(
        settings.prometheus_url, settings.prometheus_timeout, settings.prometheus_authorization.reveal(),
        settings.max_age, settings.window_seconds, settings.default_quantile))


def _changed(settings: AdapterSettings, provider: MetricsProvider) -> Callable[[], Awaitable[None]]:
    wait: Callable[[], Awaitable[None]] | None = getattr(provider, "wait_changed", None)
    if wait is not None:
        return wait
    interval = settings.refresh_interval

    async def tick() -> None:
        await asyncio.sleep(interval)

    return tick


def endpoint(settings: AdapterSettings) -> ScalerEndpoint:
    if settings.insecure_http:
        log.warning("!!! --insecure-http: the KEDA scaler on port %d is plain gRPC with NO AUTHENTICATION. !!!",
                    settings.keda_port)
        return ScalerEndpoint(settings.bind_address, settings.keda_port, None)
    assert settings.tls_cert_file and settings.tls_private_key_file and settings.keda_client_ca_file
    files = TLSFiles(settings.tls_cert_file, settings.tls_private_key_file, (settings.keda_client_ca_file,))
    return ScalerEndpoint(settings.bind_address, settings.keda_port, files, settings.cert_reload_interval)


async def serve_keda(settings: AdapterSettings, *, session: aiohttp.ClientSession, provider: MetricsProvider,
                     service: MetricsService, tasks: list[asyncio.Task[None]]) -> grpc.aio.Server | None:
    """The started scaler server, or None when ``--keda-port`` is 0. Stop it with ``server.stop(grace)``."""
    if not settings.keda_port:
        return None
    sources = ActivationSources(session=session, urls=settings.keda_activation_sources,
                                prometheus=_promql(settings, provider, session),
                                ttl=settings.refresh_interval / 2, timeout=min(settings.refresh_interval, 5.0))
    demand = Demand(service=service, sources=sources, default_quantile=settings.default_quantile)
    scaler = ExternalScaler(demand=demand, caller=CallerCheck(settings.keda_allowed_names,
                                                              insecure=settings.insecure_http),
                            changed=_changed(settings, provider))
    server, _ = await start(scaler, endpoint(settings), tasks)
    return server
