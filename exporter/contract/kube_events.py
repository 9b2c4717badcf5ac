"""The Kubernetes list/watch wire format for pods, as pure functions (the I/O is in kube_targets).

A PodList body becomes pods keyed by uid plus its resourceVersion; each watch line
(``{"type": ..., "object": ...}``) is applied to that map. Anything malformed is a
:class:`PodSourceError`, raised before the map is touched, so a bad answer never
drops known pods.
"""

from __future__ import annotations

import json
from typing import Any


class PodSourceError(Exception):
    """The API server's answer about pods could not be used."""


class PodListError(PodSourceError, ValueError):
    """The API server answered a pod list with something that is not a PodList."""


class WatchExpired(PodSourceError):
    """The watch's resourceVersion is too old (410 Gone): relist."""


class WatchError(PodSourceError):
    """The watch stream carried an ERROR event or a line that is not an event."""


def backoff_delay(attempt: int, *, initial: float, maximum: float, jitter: float) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): doubling, capped at ``maximum``.

    ``jitter`` in [0, 1] scales the delay into [50%, 100%]: after an API server restart
    the exporters of a whole cluster must not all come back in the same instant.
    """
    return min(initial * 2.0 ** min(attempt, 60), maximum) * (0.5 + 0.5 * jitter)


def parse_pod_list(data: bytes) -> tuple[dict[str, dict[str, Any]], str]:
    """A PodList body as (pods by uid, resourceVersion); :class:`PodListError` when malformed."""
    try:
        body = json.loads(data)
        items = body.get("items") or []
        version = body["metadata"]["resourceVersion"]
        if not isinstance(items, list) or not isinstance(version, str) or not version:
            raise TypeError("items must be a list and resourceVersion a non-empty string")
        pods = {pod_uid(pod): pod for pod in items}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise PodListError(f"malformed PodList: {exc}") from exc
    return pods, version


def apply_event(pods: dict[str, dict[str, Any]], line: str) -> tuple[bool, str | None]:
    """Apply one watch line to ``pods``: (whether the pods changed, the event's resourceVersion).

    An ERROR event raises :class:`WatchExpired` for 410 Gone, else :class:`WatchError`.
    """
    try:
        event = json.loads(line)
        kind, obj = event["type"], event["object"]
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "ERROR":
            code, reason, message = obj.get("code"), obj.get("reason"), obj.get("message")
        else:
            uid = pod_uid(obj)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise WatchError(f"malformed watch event {line[:200]!r}") from exc
    if kind == "ERROR":
        if code == 410:
            raise WatchExpired(f"{reason}: {message}")
        raise WatchError(f"watch ERROR event: {code} {reason}: {message}")
    if kind in ("ADDED", "MODIFIED"):
        pods[uid] = obj
    elif kind == "DELETED":
        pods.pop(uid, None)
    else:
        return False, version  # BOOKMARK (or a type from a newer server): only the version moves
    return True, version


def pod_uid(pod: dict[str, Any]) -> str:
    """The pod's identity across events: its uid, else namespace/name."""
    meta = pod.get("metadata") or {}
    return str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")
