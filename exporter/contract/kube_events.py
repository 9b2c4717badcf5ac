"""The Kubernetes list/watch wire format, as pure functions (the I/O is in :mod:`kubewatch`).

Any kind of object: a list body (``PodList``, ``ResourceSliceList``, ...) becomes items
keyed by object identity plus its resourceVersion and continue token; each watch line
(``{"type": ..., "object": ...}``) is applied to those items. ``convert`` turns an
object into what its user keeps (a scrape target, a pod summary), or None for an
object of no interest; keeping the converted item, not the object, bounds memory on a
cluster-wide watch. Anything malformed is a :class:`KubeSourceError`, raised before
the items are touched, so a bad answer never drops known objects.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
Obj = dict[str, Any]
Convert = Callable[[Obj], T | None]


class KubeSourceError(Exception):
    """The API server's answer (or the client's setup) could not be used."""


class ListError(KubeSourceError, ValueError):
    """The API server answered a list with something that is not a list of objects."""


class WatchExpired(KubeSourceError):
    """The resourceVersion (or continue token) is too old (410 Gone): relist."""


class WatchError(KubeSourceError):
    """The watch stream carried an ERROR event or a line that is not an event."""


def backoff_delay(attempt: int, *, initial: float, maximum: float, jitter: float) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): doubling, capped at ``maximum``.

    ``jitter`` in [0, 1] scales the delay into [50%, 100%]: after an API server restart
    the exporters of a whole cluster must not all come back in the same instant.
    """
    return min(initial * 2.0 ** min(attempt, 60), maximum) * (0.5 + 0.5 * jitter)


def parse_list(data: bytes, convert: Convert[T]) -> tuple[dict[str, T], str, str | None]:
    """A list body as (items by key, resourceVersion, continue token or None); :class:`ListError` when malformed.

    Objects that ``convert`` maps to None are left out; an exception from ``convert`` makes
    the whole answer unusable (it is a typed error, retried, never a half-applied list).
    """
    try:
        body = json.loads(data)
        objects = body.get("items") or []
        meta = body["metadata"]
        version, token = meta["resourceVersion"], meta.get("continue") or None
        if not isinstance(objects, list) or not isinstance(version, str) or not version:
            raise TypeError("items must be a list and resourceVersion a non-empty string")
        items = {}
        for obj in objects:
            item = convert(obj)
            if item is not None:
                items[object_key(obj)] = item
    except Exception as exc:  # json, shape, or convert(): all mean "this answer cannot be used"
        raise ListError(f"malformed list: {type(exc).__name__}: {exc}") from exc
    return items, version, token if isinstance(token, str) else None


def apply_event(items: dict[str, T], line: str, convert: Convert[T]) -> tuple[bool, str | None]:
    """Apply one watch line to ``items``: (whether they changed, the event's resourceVersion).

    An ERROR event raises :class:`WatchExpired` for 410 Gone, else :class:`WatchError`.
    An object that stops being of interest (``convert`` gives None) leaves the items.
    """
    try:
        event = json.loads(line)
        kind, obj = event["type"], event["object"]
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "ERROR":
            code, reason, message = obj.get("code"), obj.get("reason"), obj.get("message")
        elif kind in ("ADDED", "MODIFIED", "DELETED"):
            key = object_key(obj)
            item = convert(obj) if kind != "DELETED" else None
    except Exception as exc:  # json, shape, or convert()
        raise WatchError(f"malformed watch event {line[:200]!r}: {type(exc).__name__}: {exc}") from exc
    if kind == "ERROR":
        if code == 410:
            raise WatchExpired(f"{reason}: {message}")
        raise WatchError(f"watch ERROR event: {code} {reason}: {message}")
    if kind not in ("ADDED", "MODIFIED", "DELETED"):
        return False, version  # BOOKMARK (or a type from a newer server): only the version moves
    if item is None:
        return items.pop(key, None) is not None, version
    items[key] = item
    return True, version


def object_key(obj: Obj) -> str:
    """The object's identity across events: its uid, else namespace/name."""
    meta = obj.get("metadata") or {}
    return str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")
