"""PromQL for every served metric: the built-in mapping of the ``prometheus`` source.

Pure. Each catalog family is read as the exporter's own series (Prometheus scrapes
the exporter with ``honor_labels``), restricted to samples younger than the max
age and to pods the exporter reports as serving. Quantile families fall back to
``histogram_quantile`` over vLLM's own buckets (either name spelling: Prometheus
may have stored ``vllm:`` as ``vllm_``), so they work before the exporter's window
fills or when only vLLM is scraped. Pods are filtered client-side: no
``pod=~"a|b|..."`` regex that grows with the deployment.
"""

from __future__ import annotations

import re

from adapter.provider import DEFAULT_QUANTILE, MetricInfo, effective_selector
from adapter.selectors import Requirement, Selector
from exporter.contract import catalog
from exporter.contract.vllm_names import HISTOGRAMS


def histogram_regex(metric: str) -> str | None:
    """PromQL ``__name__`` regex of the vLLM histogram buckets a quantile family is read from.

    The newest name in the table, with ``vllm:`` or ``vllm_`` (Prometheus may have stored
    either); older aliases are left out because a version emitting both would double count.
    """
    names = [HISTOGRAMS[short][0] for short in catalog.family(metric).source if short in HISTOGRAMS]
    if len(names) != 1:
        return None
    return f"vllm[:_]{re.escape(names[0])}_bucket"


def _string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _alternation(values: frozenset[str]) -> str:
    return _string("|".join(re.escape(v) for v in sorted(values)))


def matcher(req: Requirement) -> str:
    """One label-selector requirement as a PromQL matcher (same semantics, absent == empty)."""
    if req.op == "exists":
        return f'{req.key}!=""'
    if req.op == "!":
        return f'{req.key}=""'
    if req.op in ("=", "!="):
        return f"{req.key}{req.op}{_string(next(iter(req.values)))}"
    op = "=~" if req.op == "in" else "!~"
    return f"{req.key}{op}{_alternation(req.values)}"


def _label_key(key: str) -> str:
    # PromQL label names cannot hold '/' or '.', so such keys cannot match any series.
    return key if re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", key) else ""


def matchers(namespace: str, selector: Selector) -> str | None:
    """Matchers for a namespace and metric selector; None when the selector cannot match any series."""
    parts = [f"namespace={_string(namespace)}"]
    for req in selector.requirements:
        if not _label_key(req.key):
            if req.op in ("!", "notin", "!="):
                continue  # a label that cannot exist satisfies a negative requirement
            return None
        parts.append(matcher(req))
    return ",".join(parts)


def _quantile(selector: Selector) -> str | None:
    for req in selector.requirements:
        if req.key == "quantile" and req.op in ("=", "in") and len(req.values) == 1:
            return next(iter(req.values))
    return None


FIELD = "kvscale_field"
"""Label telling a value (``value``) from its sample's own timestamp (``timestamp``) in one query's result."""


def query_for(info: MetricInfo, namespace: str, selector: Selector, *, max_age: float,
              default_quantile: str = DEFAULT_QUANTILE) -> str | None:
    """The PromQL for one metric in one namespace; None when the selector matches nothing by construction.

    One series per pod and family label set, whichever jobs scrape the exporter (``max by`` the family's
    labels drops ``job``, ``instance`` and whatever a ServiceMonitor adds), and beside each value the
    timestamp of its sample, as a series with ``kvscale_field="timestamp"``.
    """
    selector = effective_selector(info, selector, default_quantile)
    sel = matchers(namespace, selector)
    if sel is None:
        return None
    keep = ", ".join(info.labels)
    series = f"{info.name}{{{sel}}}"
    fresh = f"(time() - timestamp({series})) <= {max_age:g}"
    value = f"max by ({keep}) ({series} and {fresh})"
    stamp = f"max by ({keep}) (timestamp({series}) and {fresh})"  # timestamp() of a selector: the sample's own
    quantile = _quantile(selector) if info.quantiled else None
    histogram = histogram_regex(info.name) if quantile is not None else None
    if quantile is not None and histogram is not None:
        rest = Selector(tuple(r for r in selector.requirements if r.key != "quantile"))
        bucket_sel = matchers(namespace, rest)
        if bucket_sel is not None:
            window = f"{info.window_seconds or 60}s"
            buckets = f'{{__name__=~"{histogram}",{bucket_sel}}}'
            value = (f"({value} or on(namespace, pod) histogram_quantile({float(quantile):g}, "
                     f"sum by (namespace, pod, le) (rate({buckets}[{window}]))))")
            stamp = f"({stamp} or on(namespace, pod) max by (namespace, pod) (timestamp({buckets})))"
    not_serving = f"(kvscale_vllm_up{{namespace={_string(namespace)}}} == 0)"
    value = f"{value} unless on(namespace, pod) {not_serving}"
    return (f'label_replace({value}, "{FIELD}", "value", "", "") or '
            f'label_replace({stamp}, "{FIELD}", "timestamp", "", "")')


def unhonored_jobs_query(info: MetricInfo, namespace: str) -> str:
    """Jobs that store the exporter's namespace as ``exported_namespace``: scraped without honor_labels."""
    return f"count by (job) ({info.name}{{exported_namespace={_string(namespace)}}})"
