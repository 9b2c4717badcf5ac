"""Where the exporters are: given as URLs, or discovered as the DaemonSet's pods.

Discovery lists the exporter pods through the Kubernetes API (the ``kubernetes``
client, run in a thread: it is synchronous) and returns the /metrics URL of each
running, ready pod. A failed listing raises; the caller keeps its last view.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol


class EndpointError(Exception):
    """Exporter endpoints could not be discovered."""


class EndpointSource(Protocol):
    async def endpoints(self) -> Sequence[str]:
        """Current exporter /metrics URLs."""
        ...


class StaticEndpoints:
    def __init__(self, urls: Sequence[str]) -> None:
        self._urls = tuple(metrics_url(u) for u in urls)

    async def endpoints(self) -> Sequence[str]:
        return self._urls


def metrics_url(url: str) -> str:
    """An exporter base URL or /metrics URL, normalised to the /metrics URL."""
    url = url.rstrip("/")
    return url if url.endswith("/metrics") else url + "/metrics"


def urls_from_pods(pods: Sequence[dict[str, Any]], port: int) -> list[str]:
    """/metrics URLs of the running, ready pods of a PodList's items (pure)."""
    urls = []
    for pod in pods:
        status = pod.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        ip = status.get("podIP") or status.get("pod_ip")
        if status.get("phase") == "Running" and ready and ip:
            host = f"[{ip}]" if ":" in ip else ip
            urls.append(f"http://{host}:{port}/metrics")
    return sorted(urls)


class KubeEndpoints:
    """Exporter pods found by label selector in a namespace, through the Kubernetes API."""

    def __init__(self, *, core_api: Any, namespace: str, label_selector: str, port: int) -> None:
        self._api = core_api
        self._namespace = namespace
        self._selector = label_selector
        self._port = port

    async def endpoints(self) -> Sequence[str]:
        try:
            pod_list = await asyncio.to_thread(
                self._api.list_namespaced_pod, self._namespace, label_selector=self._selector,
                _request_timeout=5)
        except Exception as exc:  # the client raises ApiException, urllib3 errors, ...
            raise EndpointError(f"listing exporter pods in {self._namespace} ({self._selector}): {exc}") from exc
        items = [self._api.api_client.sanitize_for_serialization(p) for p in pod_list.items]
        return urls_from_pods(items, self._port)
