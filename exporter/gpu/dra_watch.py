"""The node's ResourceSlices (and its pods' UIDs), kept current by the shared list+watch.

Two :class:`~exporter.contract.kubewatch.KubeWatch` instances, both with the field selector
``spec.nodeName=<node>``: ResourceSlices, whose view maps (driver, pool, device) to a
GPU UUID (:mod:`exporter.gpu.dra`), and pods, whose view maps (namespace, pod) to the
pod's UID for ``kvscale_gpu_allocation_info``. A slice published after the watch started
(a MIG device the DRA driver created on demand) arrives as a watch event. On a cluster
that does not serve ``resource.k8s.io/v1`` (before 1.34) the first list answers 404 and
the slices are read as ``v1beta1`` from then on. RBAC: get/list/watch on
``resourceslices`` (the chart grants it with ``dra.enabled``) and on pods.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from exporter.contract.kubewatch import DEFAULT_TIMINGS, KubeWatch, Resource, WatchTimings, pods
from exporter.gpu.dra import DeviceKey, SliceDevice, device_index, slice_devices

log = logging.getLogger(__name__)

PodUids = dict[tuple[str, str], str]


def pod_uid(obj: Mapping[str, Any]) -> tuple[tuple[str, str], str] | None:
    meta = obj.get("metadata") or {}
    uid = meta.get("uid")
    return ((str(meta.get("namespace") or ""), str(meta.get("name") or "")), str(uid)) if uid else None


def uid_index(items: Mapping[str, tuple[tuple[str, str], str]]) -> PodUids:
    return dict(items.values())


class SliceWatch:
    """ResourceSlices and pod UIDs of one node; :meth:`devices` and :meth:`pod_uids` are cheap reads."""

    def __init__(self, *, api: Any, node_name: str, timings: WatchTimings = DEFAULT_TIMINGS) -> None:
        from kubernetes import client

        self._v1 = client.ResourceV1Api(api)
        self._v1beta1 = client.ResourceV1beta1Api(api)
        self.version = "v1"
        """The resource.k8s.io version the slices are read as: v1, or v1beta1 after a 404."""
        selector = f"spec.nodeName={node_name}"
        self.slices: KubeWatch[dict[DeviceKey, SliceDevice], dict[DeviceKey, SliceDevice]] = KubeWatch(
            resource=Resource("resourceslices", self._list_slices), convert=slice_devices, view=device_index,
            field_selector=selector, timings=timings)
        self.pods: KubeWatch[tuple[tuple[str, str], str], PodUids] = KubeWatch(
            resource=pods(client.CoreV1Api(api)), convert=pod_uid, view=uid_index, field_selector=selector,
            timings=timings)

    def _list_slices(self, **kwargs: Any) -> Any:
        """List or watch through v1, falling back to v1beta1 for good when the server does not serve v1."""
        from kubernetes.client.exceptions import ApiException

        if self.version == "v1":
            try:
                return self._v1.list_resource_slice(**kwargs)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                log.info("resource.k8s.io/v1 is not served (Kubernetes before 1.34): reading ResourceSlices as v1beta1")
                self.version = "v1beta1"
        return self._v1beta1.list_resource_slice(**kwargs)

    def start(self) -> SliceWatch:
        self.slices.start()
        self.pods.start()
        return self

    def devices(self) -> Mapping[DeviceKey, SliceDevice]:
        return self.slices.view()

    def pod_uids(self) -> Mapping[tuple[str, str], str]:
        return self.pods.view()

    def stop(self) -> None:
        self.slices.stop()
        self.pods.stop()
