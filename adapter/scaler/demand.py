"""A trigger's value and activity, answered from the adapter's own view (no second pod resolution).

The value is what the custom-metrics API answers for the same workload: the
:class:`~adapter.service.MetricsService` resolves the workload's pods and aggregates them as the
catalog declares. Unknown is an error, never 0: pods without a fresh value are NOT_FOUND, a source
that cannot be read is UNAVAILABLE, and KEDA then counts a failure toward the ScaledObject's
``fallback``. One state is known although no pod reports: a workload with no pods at all (scaled to
zero) whose trigger names an activation source that answers. Its pods then hold no demand (the
value is 0, an empty sum), and activity is the source's demand against ``activationSourceTarget``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from adapter.provider import AmbiguousMetricError, MetricQuery, ProviderError, SourceUnavailableError
from adapter.scaler import MetadataError, NoDataError, ScalerError, SourceDownError
from adapter.scaler.activation import ActivationSources
from adapter.scaler.trigger import Trigger, Workload, parse_trigger
from adapter.service import MetricsService, NoPodsError, NotFoundError, RequestError, Target

log = logging.getLogger(__name__)

_RESOURCES = {"deployment": "deployments.apps", "statefulset": "statefulsets.apps", "podSelector": "pods"}


def target_of(workload: Workload, namespace: str) -> Target:
    """The custom-metrics target that names the same pods (a workload, or ``pods/*`` with a selector)."""
    if workload.kind == "podSelector":
        return Target("pods", namespace, "*", workload.selector)
    return Target(_RESOURCES[workload.kind], namespace, workload.name)


@dataclass(frozen=True)
class Activity:
    active: bool
    value: float
    source: float | None  # the activation source's demand, when the trigger names one


class Demand:
    """Values and activity of triggers in one namespace each (the ScaledObject's)."""

    def __init__(self, *, service: MetricsService, sources: ActivationSources, default_quantile: str) -> None:
        self._service = service
        self._sources = sources
        self._default_quantile = default_quantile

    def trigger(self, metadata: dict[str, str]) -> Trigger:
        return parse_trigger(metadata, served=self._service.metrics(), default_quantile=self._default_quantile,
                             sources=self._sources.names, prometheus=self._sources.has_prometheus)

    async def value(self, trigger: Trigger, namespace: str) -> float:
        """The workload's value of the trigger's family, as the custom-metrics API aggregates it."""
        if not namespace:
            raise MetadataError("the ScaledObject's namespace is empty")
        query = MetricQuery(trigger.info.name, trigger.selector)
        what = f"{trigger.workload} in {namespace}"
        try:
            value = (await self._service.aggregate_over(target_of(trigger.workload, namespace), query)).value
        except NoPodsError as exc:
            if trigger.activation is None:
                raise NoDataError(f"{what} has no pods, and the trigger names no activationSource to read "
                                  "demand from at zero replicas") from exc
            await self._source(trigger)  # known only if the source answers
            return 0.0
        except NotFoundError as exc:
            detail = f" {trigger.info.name}" + (f" (quantile {trigger.quantile})" if trigger.quantile else "")
            raise NoDataError(f"no pod of {what} has a fresh value of{detail}") from exc
        except SourceUnavailableError as exc:
            raise SourceDownError(f"the adapter's source cannot be read: {exc}") from exc
        except AmbiguousMetricError as exc:
            raise MetadataError(str(exc)) from exc
        except (RequestError, ProviderError) as exc:
            raise SourceDownError(f"{what}: {exc}") from exc
        if not math.isfinite(value):  # an infinite latency has no number KEDA could use
            raise NoDataError(f"{trigger.info.name} of {what} has no finite value")
        return value

    async def _source(self, trigger: Trigger) -> float:
        assert trigger.activation is not None
        try:
            return await self._sources.demand(trigger.activation)
        except ScalerError as exc:
            raise type(exc)(f"{trigger.activation}: {exc}") from exc

    async def activity(self, trigger: Trigger, namespace: str) -> Activity:
        """Active when the workload's value exceeds activationTarget or the source's demand exceeds
        activationSourceTarget. Inactive only when every part is known: an unknown part raises."""
        errors: list[ScalerError] = []
        value = source = None
        try:
            value = await self.value(trigger, namespace)
        except MetadataError:
            raise
        except ScalerError as exc:
            errors.append(exc)
        if trigger.activation is not None:
            try:
                source = await self._source(trigger)
            except ScalerError as exc:
                errors.append(exc)
        active = (value is not None and value > trigger.activation_target) or (
            source is not None and trigger.activation is not None and source > trigger.activation.threshold)
        if not active and errors:
            raise _first(errors)
        return Activity(active, value if value is not None else float("nan"), source)


def _first(errors: Sequence[ScalerError]) -> ScalerError:
    """An outage outranks missing data: it is the cause to fix."""
    return next((e for e in errors if isinstance(e, SourceDownError)), errors[0])
