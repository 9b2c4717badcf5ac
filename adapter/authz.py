"""Delegated authorization: ask kube-apiserver with a SubjectAccessReview, cache the answer 10 s.

Mirrors k8s.io/apiserver's delegating authorizer: ``system:masters`` is always
allowed; allow and deny are both cached for ``ttl`` seconds. A review that cannot
be made is an error (500, as kube-apiserver answers; logged with its cause, rate-limited),
never an allow: failing open would hand the metrics API to anyone who can reach the port.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from adapter.auth import User
from exporter.contract.errorlog import RateLimitedLog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attributes:
    user: User
    verb: str
    path: str | None = None
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    namespace: str = ""

    def describe(self) -> str:
        if self.path is not None:
            return f"{self.verb} {self.path}"
        sub = f"/{self.subresource}" if self.subresource else ""
        where = f" in namespace {self.namespace!r}" if self.namespace else ""
        return f"{self.verb} {self.resource}{sub}.{self.group}{where}"

    def cache_key(self) -> tuple[object, ...]:
        return (self.user.name, self.user.groups, tuple(sorted(self.user.extra.items())), self.verb, self.path,
                self.group, self.resource, self.subresource, self.name, self.namespace)


def review_body(attrs: Attributes) -> dict[str, Any]:
    """The SubjectAccessReview object for these attributes (authorization.k8s.io/v1)."""
    spec: dict[str, Any] = {"user": attrs.user.name, "groups": list(attrs.user.groups)}
    if attrs.user.extra:
        spec["extra"] = {k: list(v) for k, v in attrs.user.extra.items()}
    if attrs.path is not None:
        spec["nonResourceAttributes"] = {"path": attrs.path, "verb": attrs.verb}
    else:
        spec["resourceAttributes"] = {k: v for k, v in (
            ("namespace", attrs.namespace), ("verb", attrs.verb), ("group", attrs.group),
            ("version", attrs.version), ("resource", attrs.resource), ("subresource", attrs.subresource),
            ("name", attrs.name)) if v}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


class Authorizer(Protocol):
    async def allowed(self, attrs: Attributes) -> bool: ...


class AllowAll:
    async def allowed(self, attrs: Attributes) -> bool:
        return True


class AuthorizationError(Exception):
    """The review could not be made (timeout, transport, API error): answered 500, never allowed."""


class DelegatedAuthorizer:
    """SubjectAccessReview through the ``kubernetes`` client, which is synchronous.

    The reviews run in the authorizer's own small thread pool, so a hung kube-apiserver
    can hold at most ``workers`` threads and never the loop's default pool that other
    parts (exporter body parsing) use. Each review has a deadline (``timeout``: the
    client's socket timeouts, and the wait for an answer). Concurrent identical reviews
    share one call (single flight): a burst of HPA requests costs one review.
    """

    def __init__(self, *, authorization_api: Any, ttl: float = 10.0, timeout: float = 5.0, workers: int = 4,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._api = authorization_api
        self._ttl = ttl
        self._timeout = timeout
        self._monotonic = monotonic
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="subjectaccessreview")
        self._cache: dict[tuple[object, ...], tuple[float, bool]] = {}
        self._inflight: dict[tuple[object, ...], asyncio.Future[bool]] = {}
        self._failures = RateLimitedLog(log)  # an API outage fails every uncached request: one line each is a flood

    async def allowed(self, attrs: Attributes) -> bool:
        if "system:masters" in attrs.user.groups:
            return True
        key = attrs.cache_key()
        hit = self._cache.get(key)
        if hit is not None and self._monotonic() - hit[0] < self._ttl:
            return hit[1]
        shared = self._inflight.get(key)
        if shared is None:
            shared = self._inflight[key] = asyncio.ensure_future(self._review(key, attrs))
            shared.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(shared)  # one caller going away must not cancel the others' review

    async def _review(self, key: tuple[object, ...], attrs: Attributes) -> bool:
        loop = asyncio.get_running_loop()
        call = functools.partial(self._api.create_subject_access_review, review_body(attrs),
                                 _request_timeout=(self._timeout, self._timeout))
        try:
            async with asyncio.timeout(self._timeout):
                result = await loop.run_in_executor(self._pool, call)
            status = result.status if hasattr(result, "status") else result["status"]
            allowed = bool(status.allowed if hasattr(status, "allowed") else status.get("allowed"))
        except Exception as exc:  # any client or transport failure, or the deadline: not cached
            self._failures.warning("SubjectAccessReview for %s failed: %s: %s", attrs.describe(),
                                   type(exc).__name__, exc)
            raise AuthorizationError(f"SubjectAccessReview failed: {type(exc).__name__}") from exc
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (self._monotonic(), allowed)
        return allowed

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
