"""The provider interface: where metric values come from, knowing nothing of HTTP.

The server resolves URLs and label selectors to pod names; a provider answers
"what is metric M for these pods" from its source. A provider never invents a
value: a pod without a fresh sample is simply absent from the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from adapter.selectors import EVERYTHING, Requirement, Selector
from exporter.contract import catalog
from exporter.contract.policy import Policy


class ProviderError(Exception):
    """Base of every error a provider raises."""


class UnknownMetricError(ProviderError):
    """The metric is not one this adapter serves."""


class AmbiguousMetricError(ProviderError):
    """The metric selector picks more than one series for a pod (e.g. two quantiles)."""


class SourceUnavailableError(ProviderError):
    """The source (exporters, Prometheus) could not be read; the cause is chained and logged."""


class SourceMisconfiguredError(ProviderError):
    """The source answers, but is set up so that no answer can be right (e.g. a Prometheus job without
    ``honor_labels``); the message names the fix and carries no secret, so the client sees it."""


@dataclass(frozen=True)
class MetricInfo:
    """A metric the adapter serves, with what the catalog declares about it."""

    name: str
    window_seconds: int | None
    """The exporter's sliding window for windowed families, else None."""
    quantiled: bool
    aggregation: catalog.Aggregation
    """How an Object metric adds up its pods' values."""
    labels: tuple[str, ...] = ("namespace", "pod")
    """The family's own labels: a series is identified by these, whatever a scraper adds."""


@dataclass(frozen=True)
class MetricQuery:
    name: str
    selector: Selector = EVERYTHING


@dataclass(frozen=True)
class PodValue:
    """One pod's value; ``timestamp`` is Unix seconds of the sample, ``window`` its window if any."""

    namespace: str
    pod: str
    value: float
    timestamp: float
    window_seconds: int | None


class MetricsProvider(Protocol):
    """Answers metric values by pod. Implementations: :mod:`adapter.direct`, :mod:`adapter.promsource`."""

    def list_metrics(self) -> Sequence[MetricInfo]:
        """Every metric this provider can serve (discovery)."""
        ...

    async def pod_value(self, namespace: str, pod: str, query: MetricQuery) -> PodValue | None:
        """One pod's value, or None when it has no fresh sample."""
        ...

    async def pod_values(self, namespace: str, pods: Sequence[str], query: MetricQuery) -> list[PodValue]:
        """Values for the pods that have a fresh sample, in the order given; others are left out."""
        ...

    @property
    def ready(self) -> bool:
        """Whether the source has answered (direct: an exporter was read); /readyz waits for it."""
        ...

    @property
    def generation(self) -> int | None:
        """Bumped whenever the data answers come from changes; None when the source is asked per request
        (answers are then never reused)."""
        ...


def served_metrics(window_seconds: int) -> tuple[MetricInfo, ...]:
    """The catalog's autoscaling families, each as the catalog declares it."""
    out = []
    for fam in catalog.autoscaling():
        assert fam.aggregation is not None  # the catalog refuses an autoscaling family without one
        out.append(MetricInfo(fam.name, window_seconds if fam.windowed else None, fam.quantiled, fam.aggregation,
                              fam.labels))
    return tuple(out)


# The policy's default; a policy file changes it through the providers' settings (AdapterSettings.default_quantile).
DEFAULT_QUANTILE = repr(float(Policy().adapter_default_quantile))


def effective_selector(info: MetricInfo, selector: Selector, default_quantile: str = DEFAULT_QUANTILE) -> Selector:
    """Quantile families default to the policy's quantile when the metric selector does not say which."""
    if not info.quantiled or selector.mentions("quantile"):
        return selector
    return Selector((*selector.requirements, Requirement("quantile", "=", frozenset({default_quantile}))))


def pick_one(namespace: str, pod: str, metric: str, candidates: list[float]) -> float | None:
    """The pod's single matching series value; several is an error, none is None."""
    if not candidates:
        return None
    if len(candidates) > 1:
        raise AmbiguousMetricError(
            f"metricLabelSelector selects {len(candidates)} series of {metric} for pod {namespace}/{pod}; "
            "narrow it (for example quantile=0.95)")
    return candidates[0]
