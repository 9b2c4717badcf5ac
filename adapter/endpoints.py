"""Where the exporters are: given as URLs, or discovered as the DaemonSet's pods.

Discovery watches the exporter pods through the Kubernetes API
(:class:`adapter.kube.KubeExporterEndpoints`) and serves the /metrics URL of each
running, ready pod (:func:`url_from_pod`, pure). Until discovery has answered once,
``endpoints()`` raises; the caller keeps its last view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


def url_from_pod(pod: Mapping[str, Any], port: int) -> str | None:
    """The /metrics URL of a running, ready pod, else None (pure)."""
    status = pod.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    ip = status.get("podIP") or status.get("pod_ip")
    if status.get("phase") != "Running" or not ready or not ip:
        return None
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}/metrics"

