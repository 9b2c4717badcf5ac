"""A small fake Kubernetes API server (aiohttp) at the HTTP seam, for the real ``kubernetes`` client.

Serves pod list/watch (real JSON shapes, resourceVersion, a 410 Gone on a stale
watch), the extension-apiserver-authentication ConfigMap and SubjectAccessReviews.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from kubernetes import client


def pod(name: str, namespace: str = "demo", labels: dict[str, str] | None = None, *, ip: str = "",
        ready: bool = True, phase: str = "Running") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}, "uid": f"uid-{name}",
                         "resourceVersion": "1"},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": phase, "podIP": ip or None,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


class FakeKube:
    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.version = 10
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.lists = 0
        self.configmap: dict[str, str] | None = None
        self.allowed_users: set[str] = set()
        self.reviews: list[dict[str, Any]] = []
        app = web.Application()
        app.router.add_get("/api/v1/pods", self._pods)
        app.router.add_get("/api/v1/namespaces/{ns}/pods", self._pods)
        app.router.add_get("/api/v1/namespaces/{ns}/configmaps/{name}", self._configmap)
        app.router.add_post("/apis/authorization.k8s.io/v1/subjectaccessreviews", self._review)
        self.server = TestServer(app, host="127.0.0.1")

    def api_client(self) -> client.ApiClient:
        cfg = client.Configuration()
        cfg.host = str(self.server.make_url("")).rstrip("/")
        return client.ApiClient(cfg)

    def add(self, obj: dict[str, Any]) -> None:
        self.version += 1
        self.pods[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj

    async def emit(self, kind: str, obj: dict[str, Any]) -> None:
        self.version += 1
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        if kind == "DELETED":
            self.pods.pop(key, None)
        else:
            self.pods[key] = obj
        await self.events.put({"type": kind, "object": obj})

    async def gone(self) -> None:
        """End the current watch with 410 Gone, as an apiserver does when the resourceVersion is too old."""
        await self.events.put({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                                          "message": "too old resource version", "reason": "Expired",
                                                          "code": 410}})

    async def close(self) -> None:
        await self.events.put({"type": "CLOSE"})  # ends an open watch so the server can shut down
        await self.server.close()

    async def _pods(self, request: web.Request) -> web.StreamResponse:
        ns = request.match_info.get("ns")
        if request.query.get("watch") in ("true", "True", "1"):
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            await resp.prepare(request)
            while True:
                event = await self.events.get()
                if event["type"] == "CLOSE":
                    return resp
                await resp.write(json.dumps(event).encode() + b"\n")
                if event["type"] == "ERROR":
                    return resp
        self.lists += 1
        selector = request.query.get("labelSelector", "")
        items = [p for (pns, _), p in sorted(self.pods.items()) if ns in (None, pns)
                 and all(p["metadata"]["labels"].get(k) == v for k, v in
                         (kv.split("=", 1) for kv in selector.split(",") if kv))]
        return web.json_response({"apiVersion": "v1", "kind": "PodList",
                                  "metadata": {"resourceVersion": str(self.version)}, "items": items})

    async def _configmap(self, request: web.Request) -> web.Response:
        if self.configmap is None:
            return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 403,
                                      "reason": "Forbidden", "message": "forbidden"}, status=403)
        return web.json_response({"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": request.match_info["name"],
                                               "namespace": request.match_info["ns"]},
                                  "data": self.configmap})

    async def _review(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.reviews.append(body)
        body["status"] = {"allowed": body["spec"]["user"] in self.allowed_users}
        return web.json_response(body, status=201)
