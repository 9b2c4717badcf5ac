"""The HTTP side: routes of custom.metrics.k8s.io (and optionally external.metrics.k8s.io).

Parses URLs and query strings, runs authentication and authorization, and turns
service results and errors into JSON bodies. Knows nothing of where values come
from. Every error leaves as a metav1.Status with the right code; an unexpected
exception is logged with its traceback and answered as a neutral 500.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass

from aiohttp import web

from adapter import wire
from adapter.auth import Authenticator, User
from adapter.authz import Attributes, AuthorizationError, Authorizer
from adapter.provider import (
    AmbiguousMetricError,
    MetricQuery,
    SourceMisconfiguredError,
    SourceUnavailableError,
    UnknownMetricError,
)
from adapter.selectors import EVERYTHING, Selector, SelectorError, parse_selector
from adapter.selfmetrics import SelfMetrics
from adapter.service import BadRequestError, MetricsService, NotFoundError, RequestError, Target
from exporter.contract.connection import ErrorFormat

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_UNAUTHENTICATED = frozenset({"/healthz", "/readyz", "/livez"})
_CUSTOM = f"/apis/{wire.CUSTOM_GROUP}/{{version}}"
_EXTERNAL = f"/apis/{wire.EXTERNAL_GROUP}/{wire.EXTERNAL_VERSION}"


def _status_body(code: int, reason: str, message: str) -> bytes:
    return json.dumps(wire.status(code, reason, message), separators=(",", ":")).encode()


# The errors the listener answers outside the app (a header too large or too late, a request aiohttp
# cannot parse) are metav1 Status too: every error a client of the aggregation layer sees is one.
STATUS_ERRORS = ErrorFormat("application/json", _status_body)


def json_response(body: wire.Json, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), status=status,
                        content_type="application/json")


def status_response(code: int, reason: str, message: str) -> web.Response:
    return json_response(wire.status(code, reason, message), code)


@dataclass
class Security:
    authenticator: Authenticator | None  # None only in --insecure-http mode
    authorizer: Authorizer | None = None


def _peer_der(request: web.Request) -> bytes | None:
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    if ssl_object is None:
        return None
    der: bytes | None = ssl_object.getpeercert(binary_form=True)
    return der


def _authenticate(request: web.Request, security: Security) -> User | None:
    if security.authenticator is None:
        return User("system:anonymous", ("system:unauthenticated",))
    values: dict[str, list[str]] = {}
    for key, value in request.headers.items():  # header names are case-insensitive: X-Remote-Group == x-remote-group
        values.setdefault(key.lower(), []).append(value)
    return security.authenticator.authenticate(_peer_der(request), None, values)


_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


def request_attributes(path: str, user: User, verb: str = "get") -> Attributes:
    """SubjectAccessReview attributes as kube-apiserver's RequestInfoFactory builds them from the path (pure).

    ``/apis/G/V/namespaces/NS/pods/*/M`` is resource ``pods``, name ``*``, subresource ``M``;
    ``/apis/G/V/namespaces/NS/metrics/M`` is resource ``metrics``, name ``M``; ``/apis/G/V/namespaces/NS/M``
    (external metrics, namespace objects) is resource ``M`` with no name, so its verb is ``list``.
    Anything that is not ``/apis/G/V/<resource>...`` is a non-resource path.
    """
    parts = [p for p in path.split("/") if p]
    if len(parts) < 4 or parts[0] != "apis":
        return Attributes(user=user, verb=verb, path=path)
    group, version, rest = parts[1], parts[2], parts[3:]
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if verb == "get" and not name:
        verb = "list"
    return Attributes(user=user, verb=verb, group=group, version=version, resource=rest[0],
                      subresource=subresource, name=name, namespace=namespace)


def build_app(*, service: MetricsService, security: Security, metrics: SelfMetrics,
              external: bool = False, not_ready: Callable[[], Sequence[str]] = tuple,
              cache: ResponseCache | None = None) -> web.Application:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
        response = await _guarded(request, handler, security)
        metrics.observe(route, response.status, time.perf_counter() - started)
        return response

    app = web.Application(middlewares=[guard])
    routes = _Routes(service, external, metrics, not_ready, cache or ResponseCache(ttl=1.0))
    app.router.add_get("/healthz", routes.healthz)
    app.router.add_get("/livez", routes.healthz)
    app.router.add_get("/readyz", routes.readyz)
    app.router.add_get("/metrics", routes.self_metrics)
    app.router.add_get("/apis", routes.apis)
    app.router.add_get("/apis/{group}", routes.group)
    app.router.add_get(_CUSTOM, routes.resources)
    app.router.add_get(_CUSTOM + "/namespaces/{namespace}/metrics/{metric}", routes.namespace_metric)
    app.router.add_get(_CUSTOM + "/namespaces/{namespace}/{resource}/{name}/{metric}", routes.namespaced)
    app.router.add_get(_CUSTOM + "/{resource}/{name}/{metric}", routes.root_scoped)
    if external:
        app.router.add_get(_EXTERNAL, routes.external_resources)
        app.router.add_get(_EXTERNAL + "/namespaces/{namespace}/{metric}", routes.external)
    return app


async def _guarded(request: web.Request, handler: Handler, security: Security) -> web.StreamResponse:
    try:
        if request.path in _UNAUTHENTICATED:
            return await handler(request)
        user = _authenticate(request, security)
        if user is None:
            return status_response(401, "Unauthorized", "Unauthorized")
        if security.authorizer is not None:
            attrs = request_attributes(request.path, user)
            if not await security.authorizer.allowed(attrs):
                return status_response(403, "Forbidden", f"{attrs.describe()} is forbidden for user {user.name!r}")
        return await handler(request)
    except web.HTTPNotFound:
        return status_response(404, "NotFound", "the server could not find the requested resource")
    except web.HTTPMethodNotAllowed:
        return status_response(405, "MethodNotAllowed", f"{request.method} is not supported")
    except RequestError as exc:
        return status_response(exc.code, exc.reason, str(exc))
    except SourceUnavailableError as exc:
        log.warning("metrics source unavailable for %s: %s", request.path, exc)
        return status_response(503, "ServiceUnavailable", "the metrics source is unavailable")
    except SourceMisconfiguredError as exc:  # names the fix (a scrape job), no secret: the HPA event shows it
        return status_response(503, "ServiceUnavailable", str(exc))
    except AuthorizationError:  # logged (rate-limited) with its cause where it happened
        return status_response(500, "InternalError", "the authorization check could not be completed")
    except Exception:
        log.exception("unexpected error serving %s", request.path_qs)
        return status_response(500, "InternalError", "an internal error occurred")


def _selector(request: web.Request, key: str) -> Selector:
    raw = request.query.get(key, "")
    try:
        return parse_selector(raw) if raw else EVERYTHING
    except SelectorError as exc:
        raise BadRequestError(f"invalid {key} {raw!r}: {exc}") from exc


class ResponseCache:
    """Encoded answers reused while the data behind them is unchanged.

    The direct provider's view changes once per refresh; between refreshes the same
    HPA query has the same answer. An entry is valid only for the token (view and
    inventory generation) it was computed from and for at most ``ttl`` seconds, so a
    stalled refresh loop cannot keep a pod alive past its max age for longer than one
    refresh interval.
    """
    def __init__(self, *, ttl: float, max_entries: int = 512,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._monotonic = monotonic
        self._entries: OrderedDict[Hashable, tuple[Hashable, float, bytes]] = OrderedDict()

    def get(self, key: Hashable, token: Hashable) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        entry_token, stored, body = entry
        if entry_token != token or self._monotonic() - stored > self._ttl:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return body

    def put(self, key: Hashable, token: Hashable, body: bytes) -> None:
        self._entries[key] = (token, self._monotonic(), body)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class _Routes:
    def __init__(self, service: MetricsService, external: bool, metrics: SelfMetrics,
                 not_ready: Callable[[], Sequence[str]], cache: ResponseCache) -> None:
        self._service = service
        self._cache = cache
        self._external = external
        self._metrics = metrics
        self._not_ready = not_ready

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(self, request: web.Request) -> web.Response:
        waiting = self._not_ready()  # each part that is not ready yet, and why: one line each
        if waiting:
            return web.Response(status=503, text="not ready:\n" + "\n".join(waiting) + "\n")
        return web.Response(text="ok")

    async def self_metrics(self, request: web.Request) -> web.Response:
        body, content_type = self._metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def apis(self, request: web.Request) -> web.Response:
        return json_response(wire.api_group_list(external=self._external))

    async def group(self, request: web.Request) -> web.Response:
        group = request.match_info["group"]
        if group == wire.CUSTOM_GROUP or (self._external and group == wire.EXTERNAL_GROUP):
            return json_response(wire.api_group(group))
        raise NotFoundError("the server could not find the requested resource")

    async def resources(self, request: web.Request) -> web.Response:
        version = _version(request)
        names = [m.name for m in self._service.metrics()]
        return json_response(wire.api_resource_list(f"{wire.CUSTOM_GROUP}/{version}", names))

    async def external_resources(self, request: web.Request) -> web.Response:
        names = [m.name for m in self._service.metrics()]
        return json_response(wire.api_resource_list(f"{wire.EXTERNAL_GROUP}/{wire.EXTERNAL_VERSION}", names))

    async def namespace_metric(self, request: web.Request) -> web.Response:
        ns = request.match_info["namespace"]
        return await self._custom(request, Target("namespaces", ns, ns))

    async def namespaced(self, request: web.Request) -> web.Response:
        info = request.match_info
        target = Target(info["resource"], info["namespace"], info["name"], _selector(request, "labelSelector"))
        return await self._custom(request, target)

    async def root_scoped(self, request: web.Request) -> web.Response:
        info = request.match_info
        if info["resource"] != "namespaces" or info["name"] == "*":
            raise NotFoundError(f"the server could not find the metric {info['metric']} for {info['resource']}")
        return await self._custom(request, Target("namespaces", info["name"], info["name"]))

    async def _custom(self, request: web.Request, target: Target) -> web.Response:
        version = _version(request)
        token = self._service.cache_token()
        key = (request.path, request.query_string)
        if token is not None and (body := self._cache.get(key, token)) is not None:
            return web.Response(body=body, content_type="application/json")
        query = MetricQuery(request.match_info["metric"], _selector(request, "metricLabelSelector"))
        try:
            items = await self._service.custom(target, query)
        except UnknownMetricError as exc:
            raise NotFoundError(f"the server could not find the metric {exc} for {target.resource}") from exc
        except AmbiguousMetricError as exc:
            raise BadRequestError(str(exc)) from exc
        response = json_response(wire.metric_value_list(version, items))
        if token is not None and isinstance(response.body, bytes):
            self._cache.put(key, token, response.body)
        return response

    async def external(self, request: web.Request) -> web.Response:
        query = MetricQuery(request.match_info["metric"], _selector(request, "labelSelector"))
        try:
            items = await self._service.external(request.match_info["namespace"], query)
        except AmbiguousMetricError as exc:
            raise BadRequestError(str(exc)) from exc
        return json_response(wire.external_value_list(items))


def _version(request: web.Request) -> str:
    version = request.match_info.get("version", wire.EXTERNAL_VERSION)
    if request.path.startswith(f"/apis/{wire.CUSTOM_GROUP}/") and version not in wire.CUSTOM_VERSIONS:
        raise NotFoundError("the server could not find the requested resource")
    return version
