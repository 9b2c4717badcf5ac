"""Assembles the adapter from its settings and serves until stopped.

The only module that knows every part: it builds the clients, the pod inventory,
the provider, the security chain and the app, and starts the background tasks
(exporter refresh, certificate reload) and the Kubernetes watches (pod inventory,
exporter discovery), which /readyz waits for and shutdown stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from adapter.auth import AuthConfigError, Authenticator, ClusterAuth, RequestHeaderConfig, read_cluster_auth
from adapter.authz import DelegatedAuthorizer
from adapter.direct import DirectProvider, DirectSettings
from adapter.endpoints import EndpointSource, StaticEndpoints
from adapter.inventory import PodInventory, load_pod_file
from adapter.kube import KubeExporterEndpoints, KubePodInventory
from adapter.promsource import PrometheusProvider, PrometheusSettings
from adapter.provider import MetricsProvider
from adapter.scaler.setup import serve_keda
from adapter.selfmetrics import SelfMetrics
from adapter.server import STATUS_ERRORS, ResponseCache, Security, build_app
from adapter.service import MetricsService
from adapter.settings import AdapterSettings, SettingsError
from adapter.tls import TLSFiles, build_context, watch
from exporter.contract.connection import ConnectionLimits
from exporter.contract.errorlog import QuietExceptionHandler, RateLimitedLog
from exporter.contract.kubewatch import KubeWatch
from exporter.contract.listener import Listener

Watches = list[KubeWatch[Any, Any]]

log = logging.getLogger("adapter")


def _kube_clients(settings: AdapterSettings) -> Any:
    import kubernetes  # heavy import: only when a cluster is needed

    if settings.kubeconfig:
        kubernetes.config.load_kube_config(config_file=settings.kubeconfig)
    else:
        try:
            kubernetes.config.load_incluster_config()
        except kubernetes.config.ConfigException as exc:
            raise SettingsError(f"not in a cluster and no --kubeconfig ({exc}); outside a cluster give "
                                "--pods-file, --exporter-url and the CA files") from exc
    return kubernetes


def _cluster_auth(settings: AdapterSettings, kube: Any) -> ClusterAuth:
    if settings.requestheader_client_ca_file is None and settings.client_ca_file is None:
        return read_cluster_auth(kube.client.CoreV1Api(), settings.kube_api_timeout)
    rh = None
    try:
        if settings.requestheader_client_ca_file is not None:
            rh = RequestHeaderConfig(settings.requestheader_client_ca_file.read_bytes(),
                                     settings.requestheader_allowed_names, settings.requestheader_username_headers,
                                     settings.requestheader_group_headers,
                                     settings.requestheader_extra_headers_prefix)
        client = settings.client_ca_file.read_bytes() if settings.client_ca_file else None
    except OSError as exc:
        raise AuthConfigError(f"cannot read a CA file: {exc}") from exc
    return ClusterAuth(rh, client)


def _inventory(settings: AdapterSettings, kube: Any, watches: Watches) -> PodInventory:
    if settings.pods_file is not None:
        return load_pod_file(settings.pods_file)
    inventory = KubePodInventory(core_v1=kube.client.CoreV1Api()).start()
    watches.append(inventory.watch)
    return inventory


def _not_ready(provider: MetricsProvider, source: str, watches: Sequence[KubeWatch[Any, Any]]) -> list[str]:
    """What /readyz waits for: each watch's first list, and the source's first answer."""
    waiting = [w.status() for w in watches if not w.ready]
    if not provider.ready:
        waiting.append(f"the {source} source has not answered yet")
    return waiting


def _provider(settings: AdapterSettings, session: aiohttp.ClientSession, kube: Any,
              tasks: list[asyncio.Task[None]], watches: Watches) -> tuple[MetricsProvider, Any]:
    if settings.source == "prometheus":
        assert settings.prometheus_url is not None
        prom = PrometheusProvider(session=session, settings=PrometheusSettings(
            settings.prometheus_url, settings.prometheus_timeout, settings.prometheus_authorization.reveal(),
            settings.max_age, settings.window_seconds, settings.default_quantile))
        return prom, prom.freshness
    endpoints: EndpointSource
    if settings.exporter_urls:
        endpoints = StaticEndpoints(settings.exporter_urls)
    else:
        discovery = KubeExporterEndpoints(core_v1=kube.client.CoreV1Api(), namespace=settings.exporter_namespace,
                                          label_selector=settings.exporter_selector,
                                          port=settings.exporter_port).start()
        watches.append(discovery.watch)
        endpoints = discovery
    direct = DirectProvider(endpoints=endpoints, session=session, settings=DirectSettings(
        settings.refresh_interval, settings.max_age, min(settings.refresh_interval, 5.0), settings.window_seconds,
        default_quantile=settings.default_quantile))
    tasks.append(asyncio.create_task(direct.run_in_thread()))
    return direct, direct.snapshot_ages


async def run(settings: AdapterSettings) -> None:
    kube = _kube_clients(settings) if settings.needs_kubernetes else None
    tasks: list[asyncio.Task[None]] = []
    watches: Watches = []
    try:
        async with aiohttp.ClientSession() as session:
            await _serve(settings, session, kube, tasks, watches)
    finally:
        await asyncio.gather(*(asyncio.to_thread(w.stop) for w in watches))


async def _serve(settings: AdapterSettings, session: aiohttp.ClientSession, kube: Any,
                 tasks: list[asyncio.Task[None]], watches: Watches) -> None:
    provider, freshness = _provider(settings, session, kube, tasks, watches)
    registry = CollectorRegistry()
    security, ssl_context = _security(settings, kube, tasks)
    service = MetricsService(provider=provider, pods=_inventory(settings, kube, watches))
    self_metrics = SelfMetrics(registry=registry, freshness=freshness)
    app = build_app(service=service, security=security, metrics=self_metrics,
                    external=settings.enable_external_metrics,
                    not_ready=lambda: _not_ready(provider, settings.source, watches),
                    cache=ResponseCache(ttl=settings.refresh_interval))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    clients = logging.getLogger("adapter.http")
    asyncio.get_running_loop().set_exception_handler(QuietExceptionHandler(logger=clients))
    listener = Listener(runner, ConnectionLimits(
        settings.max_connections, settings.request_header_timeout, settings.keepalive_timeout,
        settings.max_request_header_bytes), ssl_context, errors=STATUS_ERRORS, problems=RateLimitedLog(clients))
    self_metrics.watch_connections(lambda: (listener.open, listener.refused, listener.evicted))
    await listener.start(settings.bind_address, settings.secure_port)
    scheme = "http" if ssl_context is None else "https"
    log.info("serving custom.metrics.k8s.io on %s://%s:%d (source %s)", scheme, settings.bind_address,
             settings.secure_port, settings.source)
    # KEDA's external scaler: the same provider and service, on its own port (off unless --keda-port).
    scaler = await serve_keda(settings, session=session, provider=provider, service=service, tasks=tasks)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if scaler is not None:
        await scaler.stop(1.0)
    for task in tasks:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*tasks)
    await listener.close()
    await runner.cleanup()
    if isinstance(security.authorizer, DelegatedAuthorizer):
        security.authorizer.close()


def _security(settings: AdapterSettings, kube: Any, tasks: list[asyncio.Task[None]]) -> tuple[Security, Any]:
    if settings.insecure_http:
        log.warning("!!! --insecure-http: plain HTTP and NO AUTHENTICATION. For local demos only; never "
                    "register this endpoint as an APIService. !!!")
        return Security(authenticator=None), None
    assert settings.tls_cert_file is not None and settings.tls_private_key_file is not None
    cluster = _cluster_auth(settings, kube)
    authenticator = Authenticator(requestheader=cluster.requestheader, client_ca_pem=cluster.client_ca_pem)
    authorizer = _authorizer(settings, kube)
    security = Security(authenticator=authenticator, authorizer=authorizer)
    cas = tuple(p for p in (settings.requestheader_client_ca_file, settings.client_ca_file) if p is not None)
    files = TLSFiles(settings.tls_cert_file, settings.tls_private_key_file, cas)
    ctx = build_context(TLSFiles(files.cert, files.key), extra_ca_pem=authenticator.trusted_pem)

    def reload_authenticator() -> None:
        # CA files may have rotated too: rebuild who we believe (the TLS store only ever grows).
        if cas:
            try:
                fresh = _cluster_auth(settings, kube)
                security.authenticator = Authenticator(requestheader=fresh.requestheader,
                                                       client_ca_pem=fresh.client_ca_pem)
            except AuthConfigError as exc:
                log.error("CA reload failed, keeping the previous CAs: %s", exc)

    tasks.append(asyncio.create_task(watch(ctx, files, interval=settings.cert_reload_interval,
                                           on_reload=reload_authenticator)))
    if not cas:
        tasks.append(asyncio.create_task(_follow_configmap(kube, security, ctx, cluster,
                                                           settings.cert_reload_interval,
                                                           timeout=settings.kube_api_timeout)))
    return security, ctx


def _authorizer(settings: AdapterSettings, kube: Any) -> DelegatedAuthorizer | None:
    mode = settings.authorization_mode
    if mode == "auto":
        mode = "delegated" if kube is not None else "none"
    if mode == "none":
        log.warning("!!! authorization is OFF (--authorization-mode %s): every authenticated user may read every "
                    "metric. In a cluster use --authorization-mode delegated. !!!", settings.authorization_mode)
        return None
    if kube is None:
        raise SettingsError("--authorization-mode delegated needs the Kubernetes API (in a cluster, or --kubeconfig)")
    return DelegatedAuthorizer(authorization_api=kube.client.AuthorizationV1Api(), timeout=settings.kube_api_timeout)


async def _follow_configmap(kube: Any, security: Security, ctx: ssl.SSLContext, current: ClusterAuth,
                            interval: float, *, timeout: float = 10.0) -> None:
    """Re-read kube-system/extension-apiserver-authentication: the front-proxy CA rotates with the cluster."""
    api = kube.client.CoreV1Api()
    while True:
        await asyncio.sleep(interval)
        try:
            fresh = await asyncio.to_thread(read_cluster_auth, api, timeout)
            if fresh == current:
                continue
            authenticator = Authenticator(requestheader=fresh.requestheader, client_ca_pem=fresh.client_ca_pem)
            ctx.load_verify_locations(cadata=authenticator.trusted_pem.decode("ascii"))
        except (AuthConfigError, ssl.SSLError, ValueError) as exc:
            log.error("re-reading the front-proxy settings failed, keeping the previous ones: %s", exc)
            continue
        security.authenticator, current = authenticator, fresh
        log.info("front-proxy settings changed in the cluster: reloaded")
