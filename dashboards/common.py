"""What every kvscale dashboard shares: datasource, variables, selectors, links.

Selectors are written once here or in the policy and interpolated into every query (the
kubernetes-mixin ``_config`` idea), so a panel never spells a label matcher itself.
Metric names come from the exporter's catalog, alert names from the alerts package,
the kube-state-metrics selector and the runbook base from the policy; the raw vLLM and
kube-state-metrics names that the catalog does not own are defined here, once.
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as model

from alerts.runbooks import runbook_url as _alert_runbook_url
from exporter.contract.catalog import Family, family
from exporter.contract.policy import Policy
from exporter.contract.vllm_names import DIRECT, HISTOGRAMS

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
TAG = "kvscale"

# Panels link runbooks by alert name before the policy is known; the build replaces this base
# with the policy's runbook_url_base (resolve_runbooks), so links match the alerts' runbook_url.
_RUNBOOKS = "kvscale:runbooks"

# The policy's cluster label, as panels spell it before the policy is known; the build replaces it
# (resolve_cluster_label), as it does the runbook base. Every by () and on () starts with it.
CLUSTER = "kvscale_cluster_label"
IN_CLUSTER = f'{CLUSTER}=~"$cluster"'

# Matchers interpolated between {} in queries. Regex matchers so "All" (.*) works; a series without the
# cluster label matches too (one Prometheus per cluster).
VLLM = f'{IN_CLUSTER}, namespace=~"$namespace", model_name=~"$model", pod=~"$pod"'
POD = f'{IN_CLUSTER}, namespace=~"$namespace", pod=~"$pod"'
NAMESPACE = f'{IN_CLUSTER}, namespace=~"$namespace"'
GPU = f'{IN_CLUSTER}, node=~"$node"'
# The vLLM series Prometheus scrapes itself (a PodMonitor on the vLLM pods): the exporter does not re-serve
# them. Panels reading them say so in their description.
NEEDS_VLLM_SCRAPE = ("Needs Prometheus to scrape vLLM's /metrics itself (a PodMonitor or ServiceMonitor on the "
                     "vLLM pods); without it this panel is empty.")


def by(*labels: str) -> str:
    """The labels of a by () or on () clause, the cluster label first."""
    return ", ".join((CLUSTER, *labels))


def ksm(policy: Policy) -> str:
    """kube-state-metrics series of the selected cluster and namespaces."""
    return ", ".join(m for m in (policy.kube_state_metrics_selector, NAMESPACE) if m)


def vllm_series(short: str, suffix: str = "") -> str:
    """The name of one of vLLM's own series, as vLLM writes it (Prometheus keeps the colon in text format)."""
    table = {**HISTOGRAMS, **DIRECT}
    return f"vllm:{table[short][0]}{suffix}"

# vLLM's own histogram (Prometheus scrapes vLLM directly), spelled as the exporter reads it.
VLLM_TTFT_BUCKET = f"vllm:{HISTOGRAMS['ttft'][0]}_bucket"

# kube-state-metrics families the autoscaling views read.
KSM_HPA_CURRENT = "kube_horizontalpodautoscaler_status_current_replicas"
KSM_HPA_DESIRED = "kube_horizontalpodautoscaler_status_desired_replicas"
KSM_HPA_MIN = "kube_horizontalpodautoscaler_spec_min_replicas"
KSM_HPA_MAX = "kube_horizontalpodautoscaler_spec_max_replicas"
KSM_HPA_SPEC_TARGET = "kube_horizontalpodautoscaler_spec_target_metric"
KSM_HPA_STATUS_TARGET = "kube_horizontalpodautoscaler_status_target_metric"
KSM_HPA_CONDITION = "kube_horizontalpodautoscaler_status_condition"
KSM_DEPLOY_SPEC = "kube_deployment_spec_replicas"
KSM_DEPLOY_AVAILABLE = "kube_deployment_status_replicas_available"



# Grafana's unit ids for the catalog's units: the family says what it measures, this how Grafana writes it.
_GRAFANA_UNITS = {"": "short", "ratio": "percentunit", "seconds": "s", "bytes": "bytes", "watts": "watt",
                  "celsius": "celsius", "hertz": "hertz", "requests": "short", "tokens": "short",
                  "tokens per second": "short", "events per second": "short", "requests per second": "reqps",
                  "dollars": "currencyUSD"}


def unit(fam: Family) -> str:
    """The Grafana unit of a panel showing ``fam``; a catalog unit without one fails the build."""
    try:
        return _GRAFANA_UNITS[fam.unit]
    except KeyError:
        raise KeyError(f"{fam.name}: no Grafana unit for the catalog unit {fam.unit!r}") from None


def legend(fam: Family) -> str:
    """Legend naming one series of ``fam`` by the labels that identify it (pod, or node and GPU)."""
    if fam.subsystem == "gpu":
        return "{{node}} gpu{{gpu}}"
    return "{{pod}}"


def metric(name: str) -> Family:
    """The catalog family; an unknown name fails the build, not a dashboard at 3 a.m."""
    return family(name)


def _query_variable(name: str, label: str, query: str) -> db.QueryVariable:
    return (
        db.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(model.VariableOption(selected=True, text="All", value="$__all"))
    )


def variables(*, with_node: bool = False) -> list[db.DatasourceVariable | db.QueryVariable]:
    """datasource, cluster, namespace, model and pod (and node for GPU views), each narrowing the next."""
    up = metric("kvscale_vllm_up").name
    found: list[db.DatasourceVariable | db.QueryVariable] = [
        db.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        _query_variable("cluster", "Cluster", f"label_values({up}, {CLUSTER})"),
        _query_variable("namespace", "Namespace", f"label_values({up}{{{IN_CLUSTER}}}, namespace)"),
        _query_variable("model", "Model", f'label_values({up}{{{NAMESPACE}}}, model_name)'),
        _query_variable("pod", "Pod", f'label_values({up}{{{NAMESPACE}, model_name=~"$model"}}, pod)'),
    ]
    if with_node:
        gpu_up = metric("kvscale_gpu_up").name
        found.append(_query_variable("node", "Node", f"label_values({gpu_up}{{{IN_CLUSTER}}}, node)"))
    return found


def runbook_url(alert: str) -> str:
    """An alert's runbook section, against the base the build fills in from the policy."""
    return _alert_runbook_url(_RUNBOOKS, alert)


def resolve_runbooks(dash: dict[str, Any], base: str) -> None:
    """Point the rendered dashboard's runbook links (its own and its panels') at the policy's base."""
    panels = [*dash.get("panels", []), *(p for row in dash.get("panels", []) for p in row.get("panels", []))]
    for holder in (dash, *panels):
        for link in holder.get("links", []):
            if link.get("url", "").startswith(_RUNBOOKS):
                link["url"] = base + link["url"][len(_RUNBOOKS):]


def resolve_cluster_label(tree: Any, label: str) -> Any:
    """A rendered dashboard (JSON-like tree) with the policy's cluster label in place of the placeholder."""
    if isinstance(tree, str):
        return tree.replace(CLUSTER, label)
    if isinstance(tree, list):
        return [resolve_cluster_label(item, label) for item in tree]
    if isinstance(tree, dict):
        return {key: resolve_cluster_label(value, label) for key, value in tree.items()}
    return tree


def runbook_link(alert: str) -> db.DashboardLink:
    return (
        db.DashboardLink(f"Runbook: {alert}")
        .type(model.DashboardLinkType.LINK)
        .url(runbook_url(alert))
        .target_blank(True)
    )


def engine_drilldown() -> db.DashboardLink:
    """A data link from a per-pod series to that pod on the engine dashboard, same time range."""
    return (
        db.DashboardLink("Open ${__field.labels.pod} in vLLM engine detail")
        .url("/d/kvscale-engine?var-namespace=${__field.labels.namespace}&var-pod=${__field.labels.pod}"
             "&${__url_time_range}&${datasource:queryparam}")
    )


def dashboard_links() -> list[db.DashboardLink]:
    """A dropdown to the other kvscale dashboards (keeping time and variables) and the runbooks."""
    return [
        db.DashboardLink("kvscale dashboards")
        .type(model.DashboardLinkType.DASHBOARDS)
        .tags([TAG])
        .as_dropdown(True)
        .include_vars(True)
        .keep_time(True),
        db.DashboardLink("Runbooks")
        .type(model.DashboardLinkType.LINK)
        .url(_RUNBOOKS)
        .icon("doc")
        .target_blank(True),
    ]


def new_dashboard(uid: str, title: str, description: str, *, with_node: bool = False) -> db.Dashboard:
    """A dashboard with the shared defaults: tags, time range, refresh, crosshair, links, variables."""
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .timezone("utc")
        .time("now-1h", "now")
        .refresh("30s")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .links(list(dashboard_links()))
        .variables(list(variables(with_node=with_node)))
    )
