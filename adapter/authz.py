"""Delegated authorization: ask kube-apiserver with a SubjectAccessReview, cache the answer 10 s.

Mirrors k8s.io/apiserver's delegating authorizer: ``system:masters`` is always
allowed; allow and deny are both cached for ``ttl`` seconds. A review that cannot
be made denies (logged with its cause): failing open would hand the metrics API
to anyone who can reach the port.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from adapter.auth import User

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


class DelegatedAuthorizer:
    """SubjectAccessReview through the ``kubernetes`` client (synchronous: run in a thread)."""

    def __init__(self, *, authorization_api: Any, ttl: float = 10.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._api = authorization_api
        self._ttl = ttl
        self._monotonic = monotonic
        self._cache: dict[tuple[object, ...], tuple[float, bool]] = {}

    async def allowed(self, attrs: Attributes) -> bool:
        if "system:masters" in attrs.user.groups:
            return True
        key = attrs.cache_key()
        now = self._monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        try:
            result = await asyncio.to_thread(self._api.create_subject_access_review, review_body(attrs))
            status = result.status if hasattr(result, "status") else result["status"]
            allowed = bool(status.allowed if hasattr(status, "allowed") else status.get("allowed"))
        except Exception as exc:  # any client or transport failure: deny, say why, do not cache
            log.error("SubjectAccessReview for %s failed, denying: %s", attrs.describe(), exc)
            return False
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now, allowed)
        return allowed
