"""Kubernetes objects as the API server returns them (JSON dicts), for the fake API server and tests."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def status(code: int, reason: str, message: str) -> Obj:
    """A ``v1.Status`` failure object, as the API server sends for errors."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def make_pod(name: str, *, namespace: str = "demo", node: str = "node-a", phase: str = "Running",
             ip: str | None = "10.0.0.1", labels: dict[str, str] | None = None,
             annotations: dict[str, str] | None = None, gpus: int | None = None, ready: bool = True,
             owner: tuple[str, str] | None = None) -> Obj:
    """A pod (the fields kvscale reads, and valid otherwise); ``owner`` is its controller (kind, name)."""
    resources = {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus is not None else {}
    pod: Obj = {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}",
                     "labels": {"app": "vllm"} if labels is None else labels, "annotations": annotations or {}},
        "spec": {"nodeName": node, "containers": [
            {"name": "vllm", "image": "vllm/vllm-openai:v0.33.0", "resources": resources}]},
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }
    if owner is not None:
        pod["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1],
                                               "uid": f"uid-{owner[1]}", "controller": True}]
    if ip is not None:
        pod["status"]["podIP"] = ip
    return pod


def make_configmap(name: str, namespace: str, data: dict[str, str]) -> Obj:
    return {"kind": "ConfigMap", "apiVersion": "v1", "data": data,
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}"}}


def make_resource_slice(name: str, *, node: str, driver: str = "gpu.nvidia.com", devices: int = 1) -> Obj:
    """A DRA ResourceSlice (resource.k8s.io/v1): cluster-scoped, published per node and driver."""
    return {"kind": "ResourceSlice", "apiVersion": "resource.k8s.io/v1",
            "metadata": {"name": name, "uid": f"uid-{name}"},
            "spec": {"driver": driver, "nodeName": node, "pool": {"name": node, "generation": 1,
                                                                  "resourceSliceCount": 1},
                     "devices": [{"name": f"gpu-{i}"} for i in range(devices)]}}
