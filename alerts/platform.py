"""Alerts on what kvscale stands on: GPUs, the exporter, the adapter and the HPAs.

The exporter and adapter absence alerts use ``absent(up{...} == 1)`` so a job that is
scraped but down, and a job that vanished from service discovery, both fire.
HPA alerts read kube-state-metrics, joined to kvscale's pods by the workload rules.
"""

from __future__ import annotations

from alerts.model import Alert, Group
from alerts.promql import duration, kvscale, matchers, number
from alerts.recording import HPA_SATURATION
from exporter.contract.catalog import FAMILIES, family
from exporter.contract.policy import Policy

GPU_LOST = "KvscaleGPULost"
GPU_XID_ERRORS = "KvscaleGPUXidErrors"
GPU_MEMORY_NEAR_FULL = "KvscaleGPUMemoryNearFull"
EXPORTER_ABSENT = "KvscaleExporterAbsent"
EXPORTER_DOWN = "KvscaleExporterDown"
EXPORTER_COLLECTOR_FAILING = "KvscaleExporterCollectorFailing"
ADAPTER_ABSENT = "KvscaleAdapterAbsent"
HPA_MAXED_OUT_SATURATED = "KvscaleHPAMaxedOutSaturated"
HPA_METRICS_UNAVAILABLE = "KvscaleHPAMetricsUnavailable"

# Saturation 1 means "at target" (DESIGN.md); above it the HPA wants replicas it may not add.
SATURATED = 1.0
# Every catalog family shares this prefix, so an HPA on any kvscale metric is recognised.
METRIC_PREFIX = "kvscale_"
if not all(f.name.startswith(METRIC_PREFIX) for f in FAMILIES):
    raise ImportError(f"catalog families must all start with {METRIC_PREFIX!r}")

# GPU alerts carry the device's labels only, so a rescheduled pod or a failed kubelet call never
# restarts their `for:`; who holds the device is looked up in the info series when the text renders.
_HOLDERS = ('{{ range $i, $h := query (printf "' + family("kvscale_gpu_allocation_info").name
            + '{node=%q, uuid=%q}" $labels.node $labels.uuid) }}'
            '{{ if $i }}, {{ else }}, used by {{ end }}{{ $h.Labels.namespace }}/{{ $h.Labels.pod }}{{ end }}')
_GPU = ("GPU {{ $labels.gpu }} ({{ $labels.gpu_model }}, {{ $labels.uuid }}) on node {{ $labels.node }}"
        + _HOLDERS)
_HPA = "{{ $labels.namespace }}/{{ $labels.horizontalpodautoscaler }}"
# absent() has no labels to name; multi-cluster setups carry the cluster as an external label.
_CLUSTER = "{{ with $externalLabels.cluster }} in cluster {{ . }}{{ end }}"


def _absent_description(selector: str, for_seconds: int) -> str:
    return f"Prometheus{_CLUSTER} has had no healthy target matching {{{selector}}} for {duration(for_seconds)}."


def gpu_alerts(p: Policy) -> Group:
    exp = p.exporter_selector
    up = kvscale("kvscale_gpu_up", exp)
    xid = kvscale("kvscale_gpu_xid_errors_total", exp)
    window = duration(p.xid_window_seconds)
    memory = f"{kvscale('kvscale_gpu_memory_used_bytes', exp)} / {kvscale('kvscale_gpu_memory_total_bytes', exp)}"
    return Group("kvscale-gpu-alerts", (
        Alert(GPU_LOST, f"{up} == 0", p.gpu_lost_for_seconds, "critical",
              "A GPU stopped answering NVML; the pods on it are failing.",
              f"NVML cannot read {_GPU} for {duration(p.gpu_lost_for_seconds)}.",
              up),
        # A new xid label set starts at 1, which increase() cannot see: catch new series too.
        Alert(GPU_XID_ERRORS,
              f"increase({xid}[{window}]) > 0\nor\n({xid} unless {xid} offset {window})",
              0, "warning",
              "A GPU reported XID errors; check the code: some mean failing hardware.",
              f"{_GPU} reported XID {{{{ $labels.xid }}}} in the last {window}.",
              xid),
        Alert(GPU_MEMORY_NEAR_FULL, f"{memory} > {number(p.gpu_memory_usage_alert)}",
              p.gpu_memory_alert_for_seconds, "warning",
              "GPU memory is nearly full; the next allocation may fail with out-of-memory.",
              f"{_GPU} has {{{{ $value | humanizePercentage }}}} of its memory in use (line "
              f"{p.gpu_memory_usage_alert * 100:g}%) for {duration(p.gpu_memory_alert_for_seconds)}.",
              memory),
    ))


def component_alerts(p: Policy) -> Group:
    # The policy refuses empty selectors: absent() of an unselective up{} would only fire when nothing is scraped.
    exp, adapter = p.exporter_selector, p.adapter_selector
    collector = kvscale("kvscale_exporter_collector_success", exp)
    return Group("kvscale-component-alerts", (
        Alert(EXPORTER_ABSENT, f"absent(up{{{exp}}} == 1)", p.absent_for_seconds, "critical",
              "No kvscale exporter is being scraped; kvscale metrics, dashboards and scaling signals are gone.",
              _absent_description(exp, p.absent_for_seconds),
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
        Alert(ADAPTER_ABSENT, f"absent(up{{{adapter}}} == 1)", p.absent_for_seconds, "critical",
              "The kvscale custom-metrics adapter is not being scraped; HPAs on kvscale metrics cannot scale.",
              _absent_description(adapter, p.absent_for_seconds),
              f"up{{{adapter}}}"),
    ))


def hpa_alerts(p: Policy) -> Group:
    ksm = matchers(p.kube_state_metrics_selector, p.hpa_namespace_selector)  # the HPAs these alerts watch
    current = f"kube_horizontalpodautoscaler_status_current_replicas{{{matchers(ksm)}}}"
    maximum = f"kube_horizontalpodautoscaler_spec_max_replicas{{{matchers(ksm)}}}"
    condition = "kube_horizontalpodautoscaler_status_condition"
    scaling_active = matchers(ksm, 'condition="ScalingActive"')
    status_false = 'status="false"'
    inactive = f"{condition}{{{matchers(scaling_active, status_false)}}}"
    prefix_matcher = f'metric_name=~"{METRIC_PREFIX}.*"'
    ours = f"kube_horizontalpodautoscaler_spec_target_metric{{{matchers(ksm, prefix_matcher)}}}"
    on_hpa = "and on (namespace, horizontalpodautoscaler)"
    return Group("kvscale-hpa-alerts", (
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
    ))


def platform_groups(p: Policy) -> tuple[Group, ...]:
    return gpu_alerts(p), component_alerts(p), hpa_alerts(p)
