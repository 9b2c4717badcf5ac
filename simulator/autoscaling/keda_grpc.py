"""A KEDA model's trigger source that asks a running kvscale scaler over gRPC, as KEDA does.

:class:`~simulator.autoscaling.keda.ScaledObject` reads each trigger through a
``TriggerReader`` (trigger -> value, None on failure). :class:`ScalerSource` is one: it calls
``externalscaler.ExternalScaler/GetMetrics`` of the adapter's ``--keda-port`` with the trigger as
scalerMetadata (``family`` = the trigger's metric, ``target`` = its threshold, ``activationTarget``,
a ``quantile`` from its selector, plus the workload given here), so a simulated ScaledObject scales on
exactly what a real KEDA would get from kvscale. An error status (no fresh data, source down) is
None: the model counts it toward ``fallback`` as KEDA does. :meth:`ScalerSource.active` is the
``IsActive`` answer, for a model that asks activity of the scaler rather than deriving it from the value.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import Any

import grpc

from simulator.autoscaling.keda import Trigger

pb: Any = importlib.import_module("adapter.scaler.externalscaler_pb2")
pb_grpc: Any = importlib.import_module("adapter.scaler.externalscaler_pb2_grpc")

log = logging.getLogger(__name__)


def scaler_metadata(trigger: Trigger, workload: Mapping[str, str]) -> dict[str, str]:
    """The scalerMetadata a ScaledObject would carry for this trigger (pure)."""
    meta = {"family": trigger.metric, "target": repr(float(trigger.threshold)),
            "activationTarget": repr(float(trigger.activation_threshold)), **workload}
    for key, value in trigger.selector.items():
        if key != "quantile":
            raise ValueError(f"trigger {trigger.metric}: the kvscale scaler takes a quantile, not label {key!r}")
        meta["quantile"] = value
    return meta


class ScalerSource:
    """``TriggerReader`` over the kvscale scaler; TLS with KEDA's client certificate when given."""

    def __init__(self, address: str, *, namespace: str, workload: Mapping[str, str], name: str = "simulated",
                 root_certificates: bytes | None = None, private_key: bytes | None = None,
                 certificate_chain: bytes | None = None, timeout: float = 5.0) -> None:
        if root_certificates is None:
            self._channel = grpc.insecure_channel(address)
        else:
            creds = grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)
            self._channel = grpc.secure_channel(address, creds)
        self._stub = pb_grpc.ExternalScalerStub(self._channel)
        self._namespace, self._name, self._workload = namespace, name, dict(workload)
        self._timeout = timeout

    def _ref(self, trigger: Trigger) -> Any:
        return pb.ScaledObjectRef(name=self._name, namespace=self._namespace,
                                  scalerMetadata=scaler_metadata(trigger, self._workload))

    def __call__(self, trigger: Trigger) -> float | None:
        request = pb.GetMetricsRequest(scaledObjectRef=self._ref(trigger), metricName=trigger.metric)
        try:
            (value,) = self._stub.GetMetrics(request, timeout=self._timeout).metricValues
        except grpc.RpcError as exc:
            log.info("kvscale scaler: %s: %s", trigger.metric, exc)
            return None
        # KEDA reads metricValueFloat when > 0, else the integer; negative values count as 0 (v2.20.2).
        return float(value.metricValueFloat) if value.metricValueFloat > 0 else float(max(value.metricValue, 0))

    def active(self, trigger: Trigger) -> bool | None:
        try:
            return bool(self._stub.IsActive(self._ref(trigger), timeout=self._timeout).result)
        except grpc.RpcError as exc:
            log.info("kvscale scaler: IsActive %s: %s", trigger.metric, exc)
            return None

    def close(self) -> None:
        self._channel.close()
