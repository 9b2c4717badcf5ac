"""A KEDA trigger's ``scalerMetadata``, read into a :class:`Trigger` (pure; table-tested).

Every key is checked: an unknown key, a missing or malformed value, a quantile on a family that
has none, an aggregation other than the catalog's, is a :class:`MetadataError` naming the key, never
a silent default. KEDA passes its own connection keys (``scalerAddress``, ``enableTLS``,
``unsafeSsl``) in the same map: they are KEDA's and ignored here. A key ``<key>FromEnv`` is the
value KEDA resolved from the target container's environment, and counts as ``<key>``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from adapter.provider import MetricInfo
from adapter.scaler import MetadataError
from adapter.selectors import EVERYTHING, Requirement, Selector, SelectorError, parse_selector

WorkloadKind = Literal["deployment", "statefulset", "podSelector"]
WORKLOAD_KEYS: tuple[WorkloadKind, ...] = ("deployment", "statefulset", "podSelector")
KEDA_KEYS = frozenset({"scalerAddress", "enableTLS", "unsafeSsl"})
KEYS = frozenset({"family", *WORKLOAD_KEYS, "quantile", "aggregation", "target", "activationTarget",
                  "activationSource", "activationMetric", "activationLabels", "activationQuery",
                  "activationSourceTarget"})
PROMETHEUS_SOURCE = "prometheus"
_MAX_VALUE = 4096  # a PromQL query is the longest value; anything longer is a mistake


@dataclass(frozen=True)
class Workload:
    kind: WorkloadKind
    name: str = ""
    selector: Selector = EVERYTHING

    def __str__(self) -> str:
        return f"pods with labels {self.selector}" if self.kind == "podSelector" else f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Activation:
    """Where demand is read while the workload has no pods: a configured source by name."""

    source: str
    metric: str = ""  # exposition sources: a metric name, with `labels` as matchers
    labels: Selector = EVERYTHING
    query: str = ""  # the Prometheus source: a PromQL instant query
    threshold: float = 0.0

    def __str__(self) -> str:
        what = self.query if self.source == PROMETHEUS_SOURCE else f"{self.metric}{{{self.labels}}}"
        return f"activation source {self.source} ({what})"


@dataclass(frozen=True)
class Trigger:
    info: MetricInfo
    workload: Workload
    quantile: str | None
    target: float
    activation_target: float = 0.0
    activation: Activation | None = None

    @property
    def metric_name(self) -> str:
        """The name KEDA gets in GetMetricSpec (it prefixes ``sN-``) and sends back in GetMetrics."""
        return self.info.name

    @property
    def selector(self) -> Selector:
        """The metric selector the custom-metrics API would get for the same signal."""
        if self.quantile is None:
            return EVERYTHING
        return Selector((Requirement("quantile", "=", frozenset({self.quantile})),))


def _canonical(metadata: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in metadata.items():
        if key in KEDA_KEYS:
            continue
        name = key.removesuffix("FromEnv") if key.endswith("FromEnv") else key
        if name not in KEYS:
            raise MetadataError(f"unknown scalerMetadata key {key!r}; kvscale reads {', '.join(sorted(KEYS))}")
        if name in out:
            raise MetadataError(f"scalerMetadata gives {name!r} twice (as {name} and {name}FromEnv)")
        if not value.strip():
            raise MetadataError(f"scalerMetadata {key!r} is empty")
        if len(value) > _MAX_VALUE:
            raise MetadataError(f"scalerMetadata {key!r} is longer than {_MAX_VALUE} characters")
        out[name] = value.strip()
    return out


def _number(meta: Mapping[str, str], key: str, default: float | None, *, positive: bool) -> float:
    raw = meta.get(key)
    if raw is None:
        if default is None:
            raise MetadataError(f"scalerMetadata needs {key!r}")
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise MetadataError(f"scalerMetadata {key}={raw!r} is not a number") from exc
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise MetadataError(f"scalerMetadata {key}={raw!r} must be a finite number "
                            f"{'> 0' if positive else '>= 0'}")
    return value


def _selector(meta: Mapping[str, str], key: str) -> Selector:
    try:
        return parse_selector(meta[key])
    except SelectorError as exc:
        raise MetadataError(f"scalerMetadata {key}={meta[key]!r} is not a label selector: {exc}") from exc


def _family(meta: Mapping[str, str], served: Sequence[MetricInfo]) -> MetricInfo:
    name = meta.get("family")
    if name is None:
        raise MetadataError("scalerMetadata needs 'family' (a kvscale family, e.g. kvscale_vllm_requests_waiting)")
    for info in served:
        if info.name == name:
            return info
    raise MetadataError(f"family {name!r} is not one kvscale serves for autoscaling; "
                        f"those are {', '.join(i.name for i in served)}")


def _workload(meta: Mapping[str, str]) -> Workload:
    given = [k for k in WORKLOAD_KEYS if k in meta]
    if len(given) != 1:
        raise MetadataError("scalerMetadata names the workload with exactly one of deployment, statefulset or "
                            f"podSelector (got {', '.join(given) or 'none'})")
    kind = given[0]
    if kind == "podSelector":
        selector = _selector(meta, kind)
        if not selector.requirements:
            raise MetadataError("scalerMetadata podSelector selects every pod of the namespace; name labels")
        return Workload(kind, selector=selector)
    return Workload(kind, name=meta[kind])


def _quantile(meta: Mapping[str, str], info: MetricInfo, default_quantile: str) -> str | None:
    raw = meta.get("quantile")
    if not info.quantiled:
        if raw is not None:
            raise MetadataError(f"{info.name} has no quantiles; drop scalerMetadata quantile")
        return None
    if raw is None:
        return default_quantile
    try:
        q = float(raw)
    except ValueError as exc:
        raise MetadataError(f"scalerMetadata quantile={raw!r} is not a number") from exc
    if not 0 < q < 1:
        raise MetadataError(f"scalerMetadata quantile={raw!r} must lie strictly between 0 and 1")
    return repr(q)  # spelled as the exporter labels it: 0.95, 0.5


def _activation(meta: Mapping[str, str], sources: Sequence[str], prometheus: bool) -> Activation | None:
    keys = ("activationMetric", "activationLabels", "activationQuery", "activationSourceTarget")
    source = meta.get("activationSource")
    if source is None:
        stray = [k for k in keys if k in meta]
        if stray:
            raise MetadataError(f"scalerMetadata {', '.join(stray)} needs activationSource")
        return None
    threshold = _number(meta, "activationSourceTarget", 0.0, positive=False)
    if source == PROMETHEUS_SOURCE:
        if not prometheus:
            raise MetadataError("activationSource prometheus needs the adapter's --prometheus-url")
        if "activationQuery" not in meta or "activationMetric" in meta or "activationLabels" in meta:
            raise MetadataError("activationSource prometheus takes activationQuery (PromQL), not activationMetric")
        return Activation(source, query=meta["activationQuery"], threshold=threshold)
    if source not in sources:
        known = ", ".join([*sources, PROMETHEUS_SOURCE] if prometheus else sources) or "none configured"
        raise MetadataError(f"activationSource {source!r} is not configured in the adapter "
                            f"(--keda-activation-source); known: {known}")
    if "activationMetric" not in meta or "activationQuery" in meta:
        raise MetadataError(f"activationSource {source} takes activationMetric (and optional activationLabels)")
    labels = _selector(meta, "activationLabels") if "activationLabels" in meta else EVERYTHING
    return Activation(source, metric=meta["activationMetric"], labels=labels, threshold=threshold)


def parse_trigger(metadata: Mapping[str, str], *, served: Sequence[MetricInfo], default_quantile: str,
                  sources: Sequence[str] = (), prometheus: bool = False) -> Trigger:
    """The trigger a scalerMetadata map describes; ``sources`` are the configured activation sources."""
    meta = _canonical(metadata)
    info = _family(meta, served)
    aggregation = meta.get("aggregation")
    if aggregation is not None and aggregation != info.aggregation:
        raise MetadataError(f"{info.name} aggregates over pods by {info.aggregation} (the catalog's); "
                            f"aggregation={aggregation!r} is not served")
    return Trigger(info, _workload(meta), _quantile(meta, info, default_quantile),
                   _number(meta, "target", None, positive=True),
                   _number(meta, "activationTarget", 0.0, positive=False),
                   _activation(meta, sources, prometheus))
