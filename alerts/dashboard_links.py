"""Dashboard links: every alert's ``dashboard_url`` opens the panel that shows what it fires on.

Like kubernetes-mixin's dashboard IDs in ``_config``, the panels are named here (dashboard uid and
panel id; ids are the dashboards' fixed document order), since the alerts sit below the dashboards
and cannot import them. A test holds each entry to a panel that links the alert's runbook, so a
moved panel fails the build rather than sending someone to the wrong graph.
"""

from __future__ import annotations

import dataclasses

from alerts import alerting, gpu, platform, slo
from alerts.model import Alert, Group, Rule

FLEET, ENGINE, GPU, AUTOSCALING = "kvscale-fleet", "kvscale-engine", "kvscale-gpu", "kvscale-autoscaling"

PANELS: dict[str, tuple[str, int]] = {
    alerting.KV_CACHE_NEARLY_FULL: (FLEET, 16),
    alerting.KV_FRAGMENTATION_HIGH: (ENGINE, 11),
    slo.TTFT_OVER_SLO: (FLEET, 18),
    slo.ITL_OVER_SLO: (ENGINE, 17),
    slo.E2E_OVER_SLO: (ENGINE, 18),
    slo.REQUEST_ERRORS: (FLEET, 14),
    slo.REQUEST_ABORTS: (FLEET, 14),
    alerting.QUEUE_BACKLOG_GROWING: (FLEET, 15),
    alerting.QUEUE_FAR_ABOVE_TARGET: (FLEET, 15),
    alerting.ENGINE_STALLED: (ENGINE, 6),
    alerting.MODEL_DOWN: (FLEET, 3),
    alerting.PREEMPTIONS: (ENGINE, 26),
    alerting.ADMISSION_REJECTIONS_ALERT: (ENGINE, 8),
    alerting.VLLM_TARGET_DOWN: (ENGINE, 2),
    gpu.GPU_LOST: (GPU, 2),
    gpu.GPU_XID_ERRORS: (GPU, 14),
    gpu.GPU_MEMORY_NEAR_FULL: (GPU, 8),
    gpu.GPU_TEMPERATURE_HIGH: (GPU, 13),
    gpu.GPU_ECC_ERRORS: (GPU, 15),
    gpu.GPU_CLOCKS_THROTTLED: (GPU, 16),
    platform.EXPORTER_ABSENT: (ENGINE, 3),
    platform.EXPORTER_DOWN: (ENGINE, 3),
    platform.EXPORTER_COLLECTOR_FAILING: (ENGINE, 4),
    platform.EXPORTER_NO_TARGETS: (FLEET, 2),
    platform.ADAPTER_ABSENT: (AUTOSCALING, 19),
    platform.ADAPTER_STALE: (AUTOSCALING, 18),
    platform.ADAPTER_ERRORS: (AUTOSCALING, 19),
    platform.HPA_MAXED_OUT_SATURATED: (AUTOSCALING, 5),
    platform.HPA_METRICS_UNAVAILABLE: (AUTOSCALING, 2),
    platform.HPA_REPLICAS_MISMATCH: (AUTOSCALING, 4),
}


def dashboard_url(base: str, alert: str) -> str:
    """Grafana's URL of the alert's panel, viewed alone."""
    uid, panel = PANELS[alert]
    return f"{base.rstrip('/')}/d/{uid}?viewPanel={panel}"


def add_dashboard_urls(groups: tuple[Group, ...], base: str) -> tuple[Group, ...]:
    """Every alert gets its panel's ``dashboard_url``; an alert without a panel is a build error."""
    missing = sorted(a.alert for g in groups for a in g.alerts() if a.alert not in PANELS)
    if missing:
        raise ValueError(f"alerts without a dashboard panel in alerts/dashboard_links.py: {missing}")

    def link(rule: Rule) -> Rule:
        if isinstance(rule, Alert) and rule.annotation("dashboard_url") is None:
            return rule.with_annotation("dashboard_url", dashboard_url(base, rule.alert))
        return rule

    return tuple(dataclasses.replace(g, rules=tuple(link(r) for r in g.rules)) for g in groups)
