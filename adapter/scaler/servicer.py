"""The ``externalscaler.ExternalScaler`` calls, as KEDA makes them, over :class:`~adapter.scaler.demand.Demand`.

- ``GetMetricSpec``: the trigger's target (``targetSizeFloat``; KEDA reads it as a milli-quantity).
  It needs no data, so KEDA can always build its HPA.
- ``GetMetrics``: the workload's value; KEDA calls it, then ``IsActive``, every ``pollingInterval``
  (scale loop) and on every HPA read. An error is a status with the cause (NOT_FOUND, UNAVAILABLE),
  which KEDA counts toward ``fallback.failureThreshold``; never 0.
- ``StreamIsActive`` (``external-push``): the current activity at once, then each change, checked on
  every refresh of the adapter's view, so a change reaches KEDA one refresh after the exporter
  reports it. While activity is unknown the stream sends nothing (the pull calls carry the error).

Every call first checks the caller's client certificate (:class:`CallerCheck`).
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any, NoReturn

import grpc

from adapter.scaler import MetadataError, ScalerError
from adapter.scaler.demand import Demand
from adapter.scaler.trigger import Trigger

# The generated module is untyped: Any at this one boundary, as in exporter/gpu/podresources.py.
pb: Any = importlib.import_module("adapter.scaler.externalscaler_pb2")

log = logging.getLogger(__name__)
_INT64_MAX = 2**63 - 1


class CallerCheck:
    """Only a client certificate whose CN is allowed may call; ``insecure`` (local demos) checks nothing.

    The TLS layer has already verified the certificate against the KEDA client CA (a caller without
    one never completes the handshake); this decides which of that CA's names may ask."""

    def __init__(self, allowed_names: Collection[str], *, insecure: bool = False) -> None:
        self._allowed = frozenset(allowed_names)
        self._insecure = insecure

    async def check(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if self._insecure:
            return
        auth = context.auth_context()
        if auth.get("transport_security_type") != [b"ssl"] or not auth.get("x509_common_name"):
            await _abort(context, grpc.StatusCode.UNAUTHENTICATED, "a client certificate is required")
        name = auth["x509_common_name"][0].decode("utf-8", "replace")
        if name not in self._allowed:
            log.warning("KEDA scaler call refused: client certificate CN %r is not in --keda-allowed-names", name)
            await _abort(context, grpc.StatusCode.PERMISSION_DENIED,
                         f"client certificate CN {name!r} may not call the kvscale scaler")


async def _abort(context: grpc.aio.ServicerContext[Any, Any], code: grpc.StatusCode, message: str) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("unreachable: abort raises")


class ExternalScaler:
    """Implements the generated ``ExternalScalerServicer`` (registered by :mod:`adapter.scaler.server`)."""

    def __init__(self, *, demand: Demand, caller: CallerCheck, changed: Callable[[], Awaitable[None]]) -> None:
        self._demand = demand
        self._caller = caller
        self._changed = changed

    async def _trigger(self, ref: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Trigger:
        await self._caller.check(context)
        try:
            return self._demand.trigger(dict(ref.scalerMetadata))
        except MetadataError as exc:
            await self._fail(ref, exc, context)

    async def _fail(self, ref: Any, exc: ScalerError, context: grpc.aio.ServicerContext[Any, Any]) -> NoReturn:
        log.warning("KEDA ScaledObject %s/%s: %s: %s", ref.namespace, ref.name, exc.code, exc)
        await _abort(context, getattr(grpc.StatusCode, exc.code), str(exc))

    async def GetMetricSpec(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        trigger = await self._trigger(request, context)
        spec = pb.MetricSpec(metricName=trigger.metric_name, targetSize=min(math.ceil(trigger.target), _INT64_MAX),
                             targetSizeFloat=trigger.target)
        return pb.GetMetricSpecResponse(metricSpecs=[spec])

    async def GetMetrics(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        ref = request.scaledObjectRef
        trigger = await self._trigger(ref, context)
        if request.metricName not in ("", trigger.metric_name):
            await self._fail(ref, MetadataError(f"metricName {request.metricName!r} is not this trigger's "
                                                f"({trigger.metric_name})"), context)
        try:
            value = await self._demand.value(trigger, ref.namespace)
        except ScalerError as exc:
            await self._fail(ref, exc, context)
        # KEDA reads metricValueFloat when it is > 0, else the integer (so 0 must be 0 in both).
        metric = pb.MetricValue(metricName=trigger.metric_name, metricValue=min(math.ceil(value), _INT64_MAX),
                                metricValueFloat=value)
        return pb.GetMetricsResponse(metricValues=[metric])

    async def IsActive(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        trigger = await self._trigger(request, context)
        try:
            activity = await self._demand.activity(trigger, request.namespace)
        except ScalerError as exc:
            await self._fail(request, exc, context)
        return pb.IsActiveResponse(result=activity.active)

    async def StreamIsActive(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        trigger = await self._trigger(request, context)
        sent: bool | None = None
        unknown = ""
        while True:
            try:
                activity = await self._demand.activity(trigger, request.namespace)
            except MetadataError as exc:
                await self._fail(request, exc, context)
            except ScalerError as exc:
                if str(exc) != unknown:  # once per cause, not once per refresh
                    log.warning("KEDA ScaledObject %s/%s: activity unknown, nothing pushed: %s",
                                request.namespace, request.name, exc)
                unknown = str(exc)
            else:
                unknown = ""
                if activity.active != sent:
                    sent = activity.active
                    yield pb.IsActiveResponse(result=sent)
            await self._changed()
