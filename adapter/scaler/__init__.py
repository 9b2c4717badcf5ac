"""KEDA's external scaler, served by the adapter from the same view as custom.metrics.k8s.io.

KEDA calls ``externalscaler.ExternalScaler`` (IsActive, StreamIsActive, GetMetricSpec,
GetMetrics) for every ``external`` and ``external-push`` trigger. The trigger's metadata names a
catalog family and a workload (:mod:`adapter.scaler.trigger`); values come from the adapter's
:class:`~adapter.service.MetricsService` (:mod:`adapter.scaler.demand`), demand at zero replicas
from an activation source (:mod:`adapter.scaler.activation`); the gRPC half is
:mod:`adapter.scaler.servicer` and :mod:`adapter.scaler.server`. Unknown is an error, never 0.
"""

from __future__ import annotations


class ScalerError(Exception):
    """Base of every error answered to KEDA; ``code`` names the gRPC status it becomes."""

    code = "INTERNAL"


class MetadataError(ScalerError):
    """The trigger's scalerMetadata is wrong: an unknown key, a bad or missing value."""

    code = "INVALID_ARGUMENT"


class NoDataError(ScalerError):
    """The source answers, but no pod of the workload has a fresh value (nor an activation source)."""

    code = "NOT_FOUND"


class SourceDownError(ScalerError):
    """The source itself (exporters, Prometheus, the activation source) could not be read."""

    code = "UNAVAILABLE"
