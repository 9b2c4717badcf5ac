"""Alerts on what kvscale stands on: the exporter, the adapter and the HPAs.

The exporter's absence alert uses ``absent(up{...} == 1)`` so a job that is scraped but down,
and a job that vanished from service discovery, both fire. The adapter's fires only where an
HPA depends on it (one reads a kvscale metric), so a cluster that scales with KEDA's Prometheus
trigger is not paged. HPA alerts read kube-state-metrics, joined to kvscale's pods by the
workload rules. The adapter's self-metrics (adapter/selfmetrics.py) give its freshness and errors.
"""

from __future__ import annotations

from alerts.gpu import GPU_LOST, GPU_MEMORY_NEAR_FULL, GPU_XID_ERRORS, gpu_alerts
from alerts.model import Alert, Group
from alerts.promql import duration, kvscale, matchers, number
from alerts.recording import HPA_SATURATION
from exporter.contract.catalog import FAMILIES
from exporter.contract.policy import Policy

__all__ = ["GPU_LOST", "GPU_MEMORY_NEAR_FULL", "GPU_XID_ERRORS", "platform_groups"]

EXPORTER_ABSENT = "KvscaleExporterAbsent"
EXPORTER_DOWN = "KvscaleExporterDown"
EXPORTER_COLLECTOR_FAILING = "KvscaleExporterCollectorFailing"
EXPORTER_NO_TARGETS = "KvscaleExporterNoTargets"
ADAPTER_ABSENT = "KvscaleAdapterAbsent"
ADAPTER_STALE = "KvscaleAdapterStale"
ADAPTER_ERRORS = "KvscaleAdapterErrors"
HPA_MAXED_OUT_SATURATED = "KvscaleHPAMaxedOutSaturated"
HPA_METRICS_UNAVAILABLE = "KvscaleHPAMetricsUnavailable"
HPA_REPLICAS_MISMATCH = "KvscaleHPAReplicasMismatch"

# The adapter's own series (adapter/selfmetrics.py): not kvscale_* catalog families, which describe the
# workloads; the end-to-end tests read them from the adapter's real exposition.
ADAPTER_FRESHNESS = "kvscale_adapter_metric_freshness_seconds"
ADAPTER_REQUESTS = "kvscale_adapter_requests_total"

# Saturation 1 means "at target" (DESIGN.md); above it the HPA wants replicas it may not add.
SATURATED = 1.0
# Every catalog family shares this prefix, so an HPA on any kvscale metric is recognised; KEDA names
# the metrics of the HPAs it makes s<N>-<metric>.
METRIC_PREFIX = "kvscale_"
if not all(f.name.startswith(METRIC_PREFIX) for f in FAMILIES):
    raise ImportError(f"catalog families must all start with {METRIC_PREFIX!r}")
OURS = f'metric_name=~"(s[0-9]+-)?{METRIC_PREFIX}.*"'

_HPA = "{{ $labels.namespace }}/{{ $labels.horizontalpodautoscaler }}"
# absent() has no labels to name; multi-cluster setups carry the cluster as an external label.
_CLUSTER = "{{ with $externalLabels.cluster }} in cluster {{ . }}{{ end }}"


def _exporter(p: Policy) -> list[Alert]:
    exp, cl = p.exporter_selector, p.cluster_label
    collector = kvscale("kvscale_exporter_collector_success", exp)
    exporters_up = f"count by ({cl}) (up{{{exp}}} == 1)"
    return [
        Alert(EXPORTER_ABSENT, f"absent(up{{{exp}}} == 1)", p.absent_for_seconds, "critical",
              "No kvscale exporter is being scraped; kvscale metrics, dashboards and scaling signals are gone.",
              f"Prometheus{_CLUSTER} has had no healthy target matching {{{exp}}} for "
              f"{duration(p.absent_for_seconds)}.",
              f"up{{{exp}}}"),
        Alert(EXPORTER_DOWN, f"up{{{exp}}} == 0", p.absent_for_seconds, "warning",
              "A kvscale exporter cannot be scraped; the pods on its node lose their signals.",
              "Prometheus cannot scrape the exporter {{ $labels.instance }}"
              "{{ if $labels.node }} on node {{ $labels.node }}{{ end }} for "
              f"{duration(p.absent_for_seconds)}.",
              f"up{{{exp}}}"),
        Alert(EXPORTER_COLLECTOR_FAILING, f"{collector} == 0", p.collector_failing_for_seconds, "warning",
              "A kvscale exporter collector keeps failing; some of its series are missing.",
              "The {{ $labels.collector }} collector of exporter {{ $labels.instance }} has failed every run "
              f"for {duration(p.collector_failing_for_seconds)}; the exporter log has the cause.",
              collector),
        Alert(EXPORTER_NO_TARGETS,
              f"{exporters_up}\nunless on ({cl})\ncount by ({cl}) ({kvscale('kvscale_vllm_up', exp)})",
              p.exporter_no_targets_for_seconds, p.exporter_no_targets_severity,
              "kvscale exporters are up but watch no vLLM pod; there are no serving signals.",
              f"{{{{ $value }}}} kvscale exporters{_CLUSTER} are scraped and none has watched a vLLM target for "
              f"{duration(p.exporter_no_targets_for_seconds)}: pod discovery finds nothing (the exporter's "
              "pod selector or RBAC), or every model is scaled to zero.",
              exporters_up),
    ]


def _adapter(p: Policy) -> list[Alert]:
    adapter, cl = p.adapter_selector, p.cluster_label
    ksm = matchers(p.kube_state_metrics_selector, p.hpa_namespace_selector)
    dependants = f"count by ({cl}) (kube_horizontalpodautoscaler_spec_target_metric{{{matchers(ksm, OURS)}}})"
    freshness = f"max by ({cl}, instance, source) ({ADAPTER_FRESHNESS}{{{adapter}}})"
    window = duration(p.rate_window_seconds)
    requests = f"sum by ({cl}, instance) (rate({ADAPTER_REQUESTS}{{{adapter}}}[{window}]))"
    server_errors = matchers(adapter, 'code=~"5.."')
    failed = f"sum by ({cl}, instance) (rate({ADAPTER_REQUESTS}{{{server_errors}}}[{window}]))"
    return [
        Alert(ADAPTER_ABSENT, f"{dependants}\nunless on ({cl})\ncount by ({cl}) (up{{{adapter}}} == 1)",
              p.absent_for_seconds, p.adapter_absent_severity,
              "HPAs scale on kvscale metrics but no kvscale adapter is being scraped; they cannot scale.",
              f"{{{{ $value }}}} HPA metrics{_CLUSTER} read kvscale metrics, and Prometheus has had no healthy "
              f"target matching {{{adapter}}} for {duration(p.absent_for_seconds)}.",
              dependants),
        Alert(ADAPTER_STALE, f"{freshness} > {number(p.adapter_stale_seconds)}",
              p.adapter_stale_for_seconds, p.adapter_severity,
              "The kvscale adapter's data is stale; HPAs scale on old values or none.",
              "Adapter {{ $labels.instance }} last heard from {{ $labels.source }} {{ $value | humanizeDuration }} "
              f"ago (line {number(p.adapter_stale_seconds)}s), for {duration(p.adapter_stale_for_seconds)}. "
              "Pods without fresh data are left out of its answers.",
              freshness),
        Alert(ADAPTER_ERRORS, f"({failed}\n/\n{requests}) > {number(p.adapter_error_ratio_alert)}",
              p.adapter_errors_for_seconds, p.adapter_severity,
              "The kvscale adapter is failing requests; HPAs and KEDA get errors, not values.",
              "Adapter {{ $labels.instance }} answered {{ $value | humanizePercentage }} of its requests with a "
              f"server error (line {p.adapter_error_ratio_alert:.0%}) for {duration(p.adapter_errors_for_seconds)}.",
              f"{failed}\n/\n{requests}"),
    ]


def _hpa(p: Policy) -> list[Alert]:
    ksm = matchers(p.kube_state_metrics_selector, p.hpa_namespace_selector)  # the HPAs these alerts watch
    cl = p.cluster_label
    current = f"kube_horizontalpodautoscaler_status_current_replicas{{{matchers(ksm)}}}"
    desired = f"kube_horizontalpodautoscaler_status_desired_replicas{{{matchers(ksm)}}}"
    maximum = f"kube_horizontalpodautoscaler_spec_max_replicas{{{matchers(ksm)}}}"
    condition = "kube_horizontalpodautoscaler_status_condition"
    scaling_active = matchers(ksm, 'condition="ScalingActive"')
    status_false = 'status="false"'
    inactive = f"{condition}{{{matchers(scaling_active, status_false)}}}"
    ours = f"kube_horizontalpodautoscaler_spec_target_metric{{{matchers(ksm, OURS)}}}"
    on_hpa = f"and on ({cl}, namespace, horizontalpodautoscaler)"
    stuck = duration(p.hpa_replicas_mismatch_for_seconds)
    return [
        Alert(HPA_MAXED_OUT_SATURATED,
              f"({current} >= {maximum})\n{on_hpa}\n({HPA_SATURATION} > {number(SATURATED)})",
              p.hpa_maxed_out_for_seconds, "warning",
              "An HPA is at maxReplicas while its vLLM pods are over their scaling target.",
              f"HPA {_HPA} has run at its maximum of {{{{ $value }}}} replicas for "
              f"{duration(p.hpa_maxed_out_for_seconds)} while its pods stay over their scaling target: "
              "demand exceeds the capacity it is allowed to add.",
              f"{maximum}\n{on_hpa}\n{HPA_SATURATION}"),
        Alert(HPA_METRICS_UNAVAILABLE, f"{inactive} == 1\n{on_hpa}\n{ours}",
              p.hpa_metrics_unavailable_for_seconds, "warning",
              "An HPA scaling on kvscale metrics cannot read them; it is not scaling.",
              f"HPA {_HPA} has reported ScalingActive=False for "
              f"{duration(p.hpa_metrics_unavailable_for_seconds)}: it cannot read its kvscale metrics "
              "and holds the replica count where it is.",
              f"{condition}{{{scaling_active}}}\n{on_hpa}\n{ours}"),
        # kubernetes-mixin's KubeHpaReplicasMismatch, for the HPAs on kvscale metrics: wanting other
        # replicas than it has, with the count not moving, is pods that do not start (GPUs, quota, image).
        Alert(HPA_REPLICAS_MISMATCH,
              f"({desired} != {current})\n{on_hpa}\n(changes({current}[{stuck}]) == 0)\n{on_hpa}\n{ours}",
              p.hpa_replicas_mismatch_for_seconds, p.hpa_replicas_mismatch_severity,
              "An HPA has not reached its desired replicas; its new pods are not starting.",
              f"HPA {_HPA} wants {{{{ $value }}}} replicas and has had another count, unchanged, for {stuck}: "
              "new pods are Pending (no free GPU, quota) or failing to start.",
              f"{desired}\n{on_hpa}\n{current}"),
    ]


def platform_groups(p: Policy) -> tuple[Group, ...]:
    return (gpu_alerts(p), Group("kvscale-component-alerts", tuple(_exporter(p) + _adapter(p))),
            Group("kvscale-hpa-alerts", tuple(_hpa(p))))
