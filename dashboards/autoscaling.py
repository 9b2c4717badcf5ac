"""Autoscaling: is each HPA getting its metric, what does it see against its target, is it stuck?

kube-state-metrics gives the HPA's own view (replicas, conditions, current vs target
metric); kvscale's series give the signal the adapter serves, next to the policy lines.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from alerts import alerting, platform
from dashboards import common as c
from dashboards.panels import BAD, WARN, Line, PanelBuilder, Query, layout, stat_panel, timeseries_panel
from exporter.contract.policy import Policy

UID = "kvscale-autoscaling"

WAITING = c.metric("kvscale_vllm_requests_waiting")
KV = c.metric("kvscale_vllm_kv_cache_usage_ratio")
SATURATION = c.metric("kvscale_vllm_saturation_ratio")

HPA = "{{horizontalpodautoscaler}}"


def _broken(t: Policy, condition: str, status: str = "false") -> str:
    """The HPAs whose ``condition`` has ``status`` (one series each, named), else a single 0: a stat over it
    is green only when every HPA is healthy, and names each one that is not."""
    hpa = c.by("namespace", "horizontalpodautoscaler")
    return (f'max by ({hpa}) ({c.KSM_HPA_CONDITION}{{{c.ksm(t)}, condition="{condition}", status="{status}"}}) == 1'
            " or on () vector(0)")


def _glance(t: Policy) -> list[PanelBuilder]:
    hpa = c.by("namespace", "horizontalpodautoscaler")
    at_max = (f"max by ({hpa}) ({c.KSM_HPA_CURRENT}{{{c.ksm(t)}}} >= on ({hpa}) {c.KSM_HPA_MAX}{{{c.ksm(t)}}})"
              " or on () vector(0)")
    stuck = (f"max by ({hpa}) ({c.KSM_HPA_DESIRED}{{{c.ksm(t)}}} != on ({hpa}) {c.KSM_HPA_CURRENT}{{{c.ksm(t)}}})"
             " or on () vector(0)")
    named = "{{namespace}}/{{horizontalpodautoscaler}}"
    return [
        stat_panel("HPAs that cannot read their metrics", Query(_broken(t, "ScalingActive"), named),
                   unit="short", lines=[Line(0.5, BAD)], span=6, text_mode="value_and_name",
                   runbooks=[platform.HPA_METRICS_UNAVAILABLE, platform.ADAPTER_ABSENT],
                   description="0 when every HPA reads its metrics; otherwise a red tile per HPA whose ScalingActive "
                               "condition is False (adapter down, APIService unavailable, metric name or selector "
                               "wrong): it holds its replicas."),
        stat_panel("HPAs unable to scale", Query(_broken(t, "AbleToScale"), named),
                   unit="short", lines=[Line(0.5, BAD)], span=6, text_mode="value_and_name",
                   description="0 when every HPA can scale; otherwise a red tile per HPA whose AbleToScale condition "
                               "is False: the scale target cannot be read or updated."),
        stat_panel("HPAs short of desired replicas", Query(stuck, named), unit="short", lines=[Line(0.5, WARN)],
                   span=6, text_mode="value_and_name", runbooks=[platform.HPA_REPLICAS_MISMATCH],
                   description="0 when every HPA has the replicas it wants; otherwise a tile per HPA whose desired "
                               "count differs from its current one, valued at the desired count. Lasting: new pods "
                               "are Pending (GPUs, quota) or failing to start."),
        stat_panel("HPAs at max replicas", Query(at_max, named), unit="short", lines=[Line(0.5, WARN)], span=6,
                   text_mode="value_and_name", runbooks=[platform.HPA_MAXED_OUT_SATURATED],
                   description="0 when no HPA is at maxReplicas; otherwise a tile per HPA at its maximum, valued at "
                               "it. With saturation above 1 the fleet is under-provisioned: raise maxReplicas or "
                               "GPU quota."),
    ]


def _replicas(t: Policy) -> list[PanelBuilder]:
    return [
        timeseries_panel(
            "HPA replicas",
            [Query(f"{c.KSM_HPA_CURRENT}{{{c.ksm(t)}}}", f"{HPA} current"),
             Query(f"{c.KSM_HPA_DESIRED}{{{c.ksm(t)}}}", f"{HPA} desired"),
             Query(f"{c.KSM_HPA_MIN}{{{c.ksm(t)}}}", f"{HPA} min"),
             Query(f"{c.KSM_HPA_MAX}{{{c.ksm(t)}}}", f"{HPA} max")],
            unit="short", runbooks=[platform.HPA_MAXED_OUT_SATURATED],
            description="Current, desired and the bounds of each HPA (kube-state-metrics). Desired above "
                        "current for long: pods Pending for GPUs."),
        timeseries_panel(
            "Deployment replicas",
            [Query(f"{c.KSM_DEPLOY_SPEC}{{{c.ksm(t)}}}", "{{deployment}} spec"),
             Query(f"{c.KSM_DEPLOY_AVAILABLE}{{{c.ksm(t)}}}", "{{deployment}} available")],
            unit="short",
            description="Replicas asked of the Deployment and those available. A lasting gap is pods stuck "
                        "Pending (GPUs) or loading the model."),
    ]


def _signals(t: Policy) -> list[PanelBuilder]:
    per_model = c.by("namespace", "model_name")
    return [
        timeseries_panel(
            "HPA metric vs target",
            [Query(f"{c.KSM_HPA_STATUS_TARGET}{{{c.ksm(t)}}}", f"{HPA} {{{{metric_name}}}} current"),
             Query(f"{c.KSM_HPA_SPEC_TARGET}{{{c.ksm(t)}}}", f"{HPA} {{{{metric_name}}}} target")],
            unit="short", runbooks=[platform.HPA_METRICS_UNAVAILABLE], span=24,
            description="What the HPA itself last read for each metric against its target (kube-state-metrics). "
                        "A flat or missing current value means the HPA is not getting fresh metrics."),
        timeseries_panel(
            "Waiting requests per pod (HPA signal)",
            [Query(f"avg by ({per_model}) ({WAITING.name}{{{c.VLLM}}})", "{{namespace}}/{{model_name}}")],
            unit="short", lines=[Line(t.queue_target, WARN)], span=8,
            runbooks=[alerting.QUEUE_FAR_ABOVE_TARGET, alerting.QUEUE_BACKLOG_GROWING],
            description=f"Mean over pods, as the HPA averages a Pods metric; target {t.queue_target:g}."),
        timeseries_panel(
            "KV cache usage per pod (HPA signal)",
            [Query(f"avg by ({per_model}) ({KV.name}{{{c.VLLM}}})", "{{namespace}}/{{model_name}}")],
            unit="percentunit", max_val=1, lines=[Line(t.kv_target, WARN)], span=8,
            runbooks=[alerting.KV_CACHE_NEARLY_FULL],
            description=f"Mean over pods; target {t.kv_target:.0%}."),
        timeseries_panel(
            "Saturation per pod (HPA signal)",
            [Query(f"avg by ({per_model}) ({SATURATION.name}{{{c.VLLM}}})", "{{namespace}}/{{model_name}} mean"),
             Query(f"max by ({per_model}) ({SATURATION.name}{{{c.VLLM}}})", "{{namespace}}/{{model_name}} max")],
            unit="percentunit", lines=[Line(1.0, WARN)], span=8, runbooks=[platform.HPA_MAXED_OUT_SATURATED],
            description="1 = at target on the worst of KV usage, queue and TTFT. " + SATURATION.help),
    ]


def _events(t: Policy) -> list[PanelBuilder]:
    window = f"{t.scale_down_stabilization_seconds}s"
    return [
        timeseries_panel(
            "Scaling events", [Query(f"changes({c.KSM_HPA_DESIRED}{{{c.ksm(t)}}}[{window}])", HPA)],
            unit="short", span=12,
            description=f"Changes of desired replicas over the scale-down stabilization window ({window}). More than "
                        "a couple per window is flapping: widen the window or smooth the metric."),
        timeseries_panel(
            "HPA conditions (1 = true)",
            [Query(f'{c.KSM_HPA_CONDITION}{{{c.ksm(t)}, status="true"}}', f"{HPA} {{{{condition}}}}")],
            unit="short", max_val=1, span=12, runbooks=[platform.HPA_METRICS_UNAVAILABLE],
            description="AbleToScale, ScalingActive and ScalingLimited over time; a condition dropping to 0 marks "
                        "when the HPA lost its metric or its target."),
    ]


def _adapter(t: Policy) -> list[PanelBuilder]:
    adapter = f"{t.adapter_selector}, {c.IN_CLUSTER}"
    return [
        timeseries_panel(
            "Adapter data age", [Query(f"{platform.ADAPTER_FRESHNESS}{{{adapter}}}", "{{instance}} {{source}}")],
            unit="s", lines=[Line(t.adapter_stale_seconds)], span=12, runbooks=[platform.ADAPTER_STALE],
            description="Seconds since each of the adapter's sources last answered (direct: each exporter; "
                        "prometheus: the query API). Above the line the HPA scales on old values, or on none: "
                        "pods without fresh data are left out."),
        timeseries_panel(
            "Adapter requests by code",
            [Query(f"sum by ({c.by('code')}) (rate({platform.ADAPTER_REQUESTS}{{{adapter}}}[$__rate_interval]))",
                   "{{code}}")],
            unit="reqps", stacked=True, span=12, runbooks=[platform.ADAPTER_ERRORS, platform.ADAPTER_ABSENT],
            description="Requests the adapter answered (the HPA controller, KEDA, kubectl) by HTTP code. 5xx: "
                        "its source failed; 404: a metric or object it does not know."),
    ]


def build(thresholds: Policy) -> db.Dashboard:
    dash = c.new_dashboard(UID, "kvscale / Autoscaling",
                           "Each HPA's metric against its target, its replicas, conditions and scaling events.")
    sections = (("HPA health", _glance), ("Replicas", _replicas), ("Signals vs targets", _signals),
                ("Scaling events", _events), ("Adapter", _adapter))
    dash = layout(dash, [(title, panels(thresholds)) for title, panels in sections])
    return dash
