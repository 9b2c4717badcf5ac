"""The fake API server's objects: one resourceVersion counter and change history for every kind (as etcd's).

Thread-safe: tests change objects from their own thread (or event loop) while the
server's loop serves lists and feeds watches through listeners.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tests.kube.objects import Obj

Key = tuple[str, str, str]
"""(resource, namespace, name); namespace is "" for cluster-scoped kinds."""


@dataclass(frozen=True)
class Change:
    version: int
    resource: str | None  # None for a bookmark, which every watch may see
    kind: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    old: Obj | None
    new: Obj


def resource_of(obj: Obj) -> str:
    """The plural resource name of an object's kind (the kinds kvscale watches)."""
    return {"Pod": "pods", "ConfigMap": "configmaps", "ResourceSlice": "resourceslices",
            "Node": "nodes"}.get(str(obj.get("kind", "Pod")), "pods")


class ObjectStore:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.version = 1
        self.oldest = 1  # watches from an older version get 410 Gone
        self.objects: dict[Key, Obj] = {}
        self.history: list[Change] = []
        self._listeners: list[Callable[[Change], None]] = []

    @property
    def pods(self) -> dict[tuple[str, str], Obj]:
        with self.lock:
            return {(ns, name): obj for (res, ns, name), obj in self.objects.items() if res == "pods"}

    def _record(self, resource: str | None, kind: str, old: Obj | None, new: Obj) -> int:
        change = Change(self.version, resource, kind, old, new)
        self.history.append(change)
        for listener in list(self._listeners):
            listener(change)
        return self.version

    def put(self, obj: Obj) -> int:
        """Create or replace an object (its kind says its resource); returns its new resourceVersion."""
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        key = (resource_of(obj), meta.get("namespace", ""), meta["name"])
        with self.lock:
            self.version += 1
            meta["resourceVersion"] = str(self.version)
            old = self.objects.get(key)
            self.objects[key] = obj
            return self._record(key[0], "MODIFIED" if old else "ADDED", old, obj)

    def delete(self, namespace: str, name: str, resource: str = "pods") -> int:
        with self.lock:
            old = self.objects.pop((resource, namespace, name))
            self.version += 1
            gone = copy.deepcopy(old)
            gone["metadata"]["resourceVersion"] = str(self.version)
            return self._record(resource, "DELETED", old, gone)

    def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        with self.lock:
            found = self.objects.get((resource, namespace, name))
            return copy.deepcopy(found) if found is not None else None

    def bookmark(self) -> int:
        """Tell watchers (that allow bookmarks) the current version, without a change."""
        with self.lock:
            self.version += 1
            marker = {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": str(self.version)}}
            return self._record(None, "BOOKMARK", None, marker)

    def compact(self) -> None:
        """Forget the history, as etcd compaction does: older watches now get 410 Gone."""
        with self.lock:
            self.history.clear()
            self.oldest = self.version

    def select(self, resource: str, match: Callable[[Mapping[str, Any]], bool]) -> tuple[list[Obj], int]:
        """The matching objects of a resource, in key order, and the current version (a list's answer)."""
        with self.lock:
            items = [copy.deepcopy(obj) for (res, *_), obj in sorted(self.objects.items())
                     if res == resource and match(obj)]
            return items, self.version

    def subscribe(self, resource: str, since: int,
                  listener: Callable[[Change], None]) -> tuple[list[Change] | None, Callable[[Change], None]]:
        """The backlog after ``since`` (None when compacted away: 410) and the live feed, joined without a gap.

        Version 0 means "no version": the current state as ADDED events, as the real server does.
        """
        def relevant(change: Change) -> None:
            if change.resource in (None, resource):
                listener(change)

        with self.lock:
            backlog: list[Change] | None
            if since == 0:
                backlog = [Change(self.version, resource, "ADDED", None, obj)
                           for (res, *_), obj in sorted(self.objects.items()) if res == resource]
            elif since < self.oldest:
                backlog = None
            else:
                backlog = [c for c in self.history if c.version > since and c.resource in (None, resource)]
            self._listeners.append(relevant)
        return backlog, relevant

    def unsubscribe(self, listener: Callable[[Change], None]) -> None:
        with self.lock:
            self._listeners.remove(listener)
