"""From a parsed request to response items: pod resolution, aggregation, and the not-found rules.

Knows neither HTTP nor the source: the server hands it a :class:`Target` and a
query; the provider supplies values. A request that ends with no value is a
:class:`NotFoundError` (the HPA then holds), never a zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from adapter import inventory
from adapter.inventory import PodInfo, PodInventory
from adapter.provider import MetricInfo, MetricQuery, MetricsProvider, PodValue
from adapter.quantity import QuantityError, format_quantity
from adapter.selectors import EVERYTHING, Selector
from adapter.wire import Item, ObjectRef


class RequestError(Exception):
    """A request the service cannot answer; ``code``/``reason`` become a metav1.Status."""

    code = 500
    reason = "InternalError"


class NotFoundError(RequestError):
    code = 404
    reason = "NotFound"


class BadRequestError(RequestError):
    code = 400
    reason = "BadRequest"


class NoPodsError(NotFoundError):
    """The target has no pods at all (a workload scaled to zero): there is nothing to aggregate."""


@dataclass(frozen=True)
class Aggregate:
    """One value over a target's pods; ``oldest`` is the oldest sample's Unix time, ``pods`` those counted."""

    value: float
    oldest: float
    pods: int


def aggregate(info: MetricInfo, values: Sequence[float]) -> float:
    """An Object metric's value from its pods' values, as the catalog declares for the family."""
    if info.aggregation == "sum":
        return math.fsum(values)
    if info.aggregation == "max":
        return max(values)
    return math.fsum(values) / len(values)


@dataclass(frozen=True)
class Target:
    """What a URL names: ``resource`` is a GroupResource string, ``name`` is ``*`` for all."""

    resource: str
    namespace: str
    name: str
    selector: Selector = EVERYTHING


_WORKLOADS = {"deployments.apps": ("Deployment", "apps/v1"), "statefulsets.apps": ("StatefulSet", "apps/v1")}
SUPPORTED_RESOURCES = frozenset({"pods", "namespaces", *_WORKLOADS})


class MetricsService:
    def __init__(self, *, provider: MetricsProvider, pods: PodInventory) -> None:
        self._provider = provider
        self._pods = pods

    def cache_token(self) -> tuple[int, int] | None:
        """Identifies the data answers are computed from; None when the source is queried per request."""
        provider_gen = self._provider.generation
        if provider_gen is None:
            return None
        return provider_gen, self._pods.generation

    def metrics(self) -> Sequence[MetricInfo]:
        return self._provider.list_metrics()

    def _info(self, metric: str, resource: str) -> MetricInfo:
        for info in self._provider.list_metrics():
            if info.name == metric:
                return info
        raise NotFoundError(f"the server could not find the metric {metric} for {resource}")

    async def custom(self, target: Target, query: MetricQuery) -> list[Item]:
        if target.resource not in SUPPORTED_RESOURCES:
            raise NotFoundError(f"the server could not find the metric {query.name} for {target.resource}")
        info = self._info(query.name, target.resource)
        if target.resource == "pods":
            return await self._pods_items(target, query)
        if target.resource == "namespaces":
            ref = ObjectRef("Namespace", "/v1", target.namespace)
        else:
            kind, api_version = _WORKLOADS[target.resource]
            ref = ObjectRef(kind, api_version, target.name, target.namespace)
        total = await self.aggregate_over(target, query)
        return [Item(ref, query.name, query.selector, total.oldest, info.window_seconds,
                     _quantity(total.value, query.name))]

    def _members(self, target: Target) -> list[PodInfo]:
        pods = list(self._pods.pods(target.namespace))
        if target.resource == "pods":
            return inventory.select(pods, target.selector)
        if target.resource == "namespaces":
            return pods
        return inventory.owned_by(pods, _WORKLOADS[target.resource][0], target.name)

    async def aggregate_over(self, target: Target, query: MetricQuery) -> Aggregate:
        """One value over the pods a target names (a workload, a namespace, or the pods ``pods/*`` with a
        selector picks), as the catalog declares for the family. KEDA's scaler asks the same question."""
        info = self._info(query.name, target.resource)
        members = self._members(target)
        values = await self._provider.pod_values(target.namespace, [p.name for p in members], query)
        if not values:
            what = f"{target.resource} {target.name}" if target.resource != "pods" else f"pods {target.selector}"
            error = NoPodsError if not members else NotFoundError
            raise error(f"the server could not find the metric {query.name} for {what}")
        return Aggregate(aggregate(info, [v.value for v in values]), min(v.timestamp for v in values), len(values))

    async def _pods_items(self, target: Target, query: MetricQuery) -> list[Item]:
        pods: list[PodInfo] = inventory.select(self._pods.pods(target.namespace), target.selector)
        if target.name != "*":
            pods = [p for p in pods if p.name == target.name]
            if not pods:
                raise NotFoundError(f"pods \"{target.name}\" not found")
        values = await self._provider.pod_values(target.namespace, [p.name for p in pods], query)
        items = [i for v in values if (i := _pod_item(v, query)) is not None]
        if not items:
            where = f" {target.name}" if target.name != "*" else ""
            sel = f" with selector {target.selector}" if target.selector.requirements else ""
            raise NotFoundError(f"the server could not find the metric {query.name} for pods{where}{sel}")
        return items

    async def external(self, namespace: str, query: MetricQuery) -> list[tuple[str, dict[str, str], float,
                                                                              int | None, str]]:
        self._info(query.name, "external metrics")
        pods = [p.name for p in self._pods.pods(namespace)]
        values = await self._provider.pod_values(namespace, pods, query)
        out = [(query.name, {"namespace": v.namespace, "pod": v.pod}, v.timestamp, v.window_seconds,
                _quantity(v.value, query.name)) for v in values]
        if not out:
            raise NotFoundError(f"the server could not find the external metric {query.name}")
        return out


def _quantity(value: float, metric: str) -> str:
    try:
        return format_quantity(value)
    except QuantityError as exc:
        raise NotFoundError(f"metric {metric} has no finite value") from exc


def _pod_item(value: PodValue, query: MetricQuery) -> Item | None:
    try:
        text = format_quantity(value.value)
    except QuantityError:
        return None  # Inf has no Quantity form: the pod is left out, not reported as 0
    return Item(ObjectRef("Pod", "/v1", value.pod, value.namespace), query.name, query.selector,
                value.timestamp, value.window_seconds, text)
