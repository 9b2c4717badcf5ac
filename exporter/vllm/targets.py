"""vLLM targets: what to scrape, from static flags or from pods on this node.

``parse_static`` is pure (flag text to targets). ``target_from_pod`` is the pure
projection of a Kubernetes pod (as the API's JSON dict) to a target; the watch that
feeds it lives in ``exporter.vllm.kube_targets``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

ANNOTATION_PORT = "kvscale.io/port"
ANNOTATION_PATH = "kvscale.io/path"
ANNOTATION_SCHEME = "kvscale.io/scheme"
GPU_RESOURCES = ("nvidia.com/gpu",)


class TargetError(ValueError):
    """A target specification is invalid."""


@dataclass(frozen=True)
class Target:
    """One vLLM pod to scrape. ``gpus`` comes from the pod spec when known."""

    namespace: str
    pod: str
    url: str = field(repr=False)  # may hold a password (user info): never printed
    gpus: float | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.pod)


class TargetSource(Protocol):
    """Says, right now, which targets exist; owned by the vLLM collector, which closes it."""

    def targets(self) -> Sequence[Target]: ...

    @property
    def ready(self) -> bool:
        """Whether the targets are known (a pod watch has listed once); the exporter's /readyz waits for it."""
        ...

    def close(self) -> None:
        """Stop background work (a pod watch); may block briefly, so async callers run it in a thread."""
        ...


class StaticTargets:
    def __init__(self, targets: Sequence[Target]) -> None:
        self._targets = tuple(targets)

    def targets(self) -> Sequence[Target]:
        return self._targets

    @property
    def ready(self) -> bool:
        return True

    def close(self) -> None:
        pass


def parse_static(spec: str) -> Target:
    """``[NAMESPACE/POD=]URL``; without a name the pod is the URL's host:port."""
    name, sep, url = spec.partition("=")
    if sep and not name:
        raise TargetError(f"--vllm-target {redact(spec)!r}: empty NAMESPACE/POD before '='")
    if not sep or "://" in name:
        name, url = "", spec
    shown = redact(spec)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # '[::1' without its ']', a port that is not a number or over 65535
        raise TargetError(f"--vllm-target {shown!r}: not a URL with a valid port: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError(f"--vllm-target {shown!r}: expected [NAMESPACE/POD=]http(s)://HOST:PORT[/PATH]")
    if port == 0:
        raise TargetError(f"--vllm-target {shown!r}: port 0 is not a port")
    if not parts.path or parts.path == "/":
        url = url.rstrip("/") + "/metrics"
    if name:
        namespace, slash, pod = name.partition("/")
        if not slash or not namespace or not pod:
            raise TargetError(f"--vllm-target {shown!r}: the name must be NAMESPACE/POD")
    else:
        namespace, pod = "", parts.netloc.rpartition("@")[2]  # host:port, without any user info
    return Target(namespace=namespace, pod=pod, url=url)


def redact(text: str) -> str:
    """A target spec or URL with the user info of its URL (``user:password@``) replaced by ``***@``."""
    head, sep, rest = text.partition("://")
    if not sep:
        return text
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    return head + sep + netloc + slash + path


def unique(targets: Sequence[Target]) -> list[Target]:
    """``targets``, or TargetError naming a NAMESPACE/POD given twice (one would silently replace the other)."""
    seen: set[tuple[str, str]] = set()
    for target in targets:
        if target.key in seen:
            name = f"{target.namespace}/{target.pod}" if target.namespace else target.pod
            raise TargetError(f"--vllm-target: {name} is given twice")
        seen.add(target.key)
    return list(targets)


def target_from_pod(pod: Mapping[str, Any], *, default_port: int, default_path: str) -> Target | None:
    """The target of a running pod with an IP, or None (pending, finished, no IP yet)."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    ip = status.get("podIP")
    if status.get("phase") != "Running" or not ip or meta.get("deletionTimestamp"):
        return None
    annotations = meta.get("annotations") or {}
    try:
        port = int(annotations.get(ANNOTATION_PORT, default_port))
    except ValueError:
        port = default_port
    path = annotations.get(ANNOTATION_PATH, default_path)
    if not path.startswith("/"):
        path = "/" + path
    scheme = annotations.get(ANNOTATION_SCHEME, "http")
    if scheme not in ("http", "https"):
        scheme = "http"
    host = f"[{ip}]" if ":" in ip else ip
    return Target(namespace=meta.get("namespace", ""), pod=meta.get("name", ""),
                  url=f"{scheme}://{host}:{port}{path}", gpus=pod_gpus(pod))


def pod_gpus(pod: Mapping[str, Any]) -> float | None:
    """GPUs a pod's containers ask for (limits, else requests); None when it asks for none."""
    total = 0.0
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        for kind in ("limits", "requests"):
            values = resources.get(kind) or {}
            found = [values[r] for r in GPU_RESOURCES if r in values]
            if found:
                with contextlib.suppress(TypeError, ValueError):  # a malformed quantity counts as none
                    total += sum(float(v) for v in found)
                break
    return total if total > 0 and math.isfinite(total) else None
