"""Alerts on the GPUs under the pods: lost, XID errors, memory, heat, ECC errors, clock throttling.

GPU alerts carry the device's labels only (node, gpu, uuid, gpu_model), so a rescheduled pod or a
failed kubelet call never restarts their ``for:``; who holds the device is looked up in the
allocation info series when the text renders. Health signals a device does not support are
absent, not 0 (``kvscale_gpu_health_supported``), so these alerts stay quiet there.
"""

from __future__ import annotations

from alerts.model import Alert, Group
from alerts.promql import duration, kvscale, number
from exporter.contract.catalog import family
from exporter.contract.policy import Policy

GPU_LOST = "KvscaleGPULost"
GPU_XID_ERRORS = "KvscaleGPUXidErrors"
GPU_MEMORY_NEAR_FULL = "KvscaleGPUMemoryNearFull"
GPU_TEMPERATURE_HIGH = "KvscaleGPUTemperatureHigh"
GPU_ECC_ERRORS = "KvscaleGPUUncorrectableECCErrors"
GPU_CLOCKS_THROTTLED = "KvscaleGPUClocksThrottled"

_HOLDERS = ('{{ range $i, $h := query (printf "' + family("kvscale_gpu_allocation_info").name
            + '{node=%q, uuid=%q}" $labels.node $labels.uuid) }}'
            '{{ if $i }}, {{ else }}, used by {{ end }}{{ $h.Labels.namespace }}/{{ $h.Labels.pod }}{{ end }}')
GPU_TEXT = ("GPU {{ $labels.gpu }} ({{ $labels.gpu_model }}, {{ $labels.uuid }}) on node {{ $labels.node }}"
            + _HOLDERS)


def seen_in(selector: str, window: str) -> str:
    """A counter's increase over ``window``, counting a series born inside it from 0.

    A label set's first sample (an XID code seen for the first time, a counter that appears
    with errors already counted) is not an increase to ``increase()``; a series that did not
    exist ``window`` ago contributes its whole value instead.
    """
    return f"(increase({selector}[{window}]) and {selector} offset {window})\nor\n{selector}"


def _hardware(p: Policy) -> list[Alert]:
    exp = p.exporter_selector
    up = kvscale("kvscale_gpu_up", exp)
    xid = kvscale("kvscale_gpu_xid_errors_total", exp)
    window = duration(p.xid_window_seconds)
    memory = f"{kvscale('kvscale_gpu_memory_used_bytes', exp)} / {kvscale('kvscale_gpu_memory_total_bytes', exp)}"
    return [
        Alert(GPU_LOST, f"{up} == 0", p.gpu_lost_for_seconds, "critical",
              "A GPU stopped answering NVML; the pods on it are failing.",
              f"NVML cannot read {GPU_TEXT} for {duration(p.gpu_lost_for_seconds)}.",
              up),
        # A new xid label set starts at 1, which increase() cannot see: catch new series too.
        Alert(GPU_XID_ERRORS,
              f"increase({xid}[{window}]) > 0\nor\n({xid} unless {xid} offset {window})",
              0, "warning",
              "A GPU reported XID errors; check the code: some mean failing hardware.",
              f"{GPU_TEXT} reported XID {{{{ $labels.xid }}}} in the last {window}.",
              xid),
        Alert(GPU_MEMORY_NEAR_FULL, f"{memory} > {number(p.gpu_memory_usage_alert)}",
              p.gpu_memory_alert_for_seconds, "warning",
              "GPU memory is nearly full; the next allocation may fail with out-of-memory.",
              f"{GPU_TEXT} has {{{{ $value | humanizePercentage }}}} of its memory in use (line "
              f"{p.gpu_memory_usage_alert * 100:g}%) for {duration(p.gpu_memory_alert_for_seconds)}.",
              memory),
    ]


def _health(p: Policy) -> list[Alert]:
    exp = p.exporter_selector
    temperature = kvscale("kvscale_gpu_temperature_celsius", exp)
    ecc = kvscale("kvscale_gpu_ecc_errors_total", exp, 'error_type="uncorrected", counter_type="volatile"')
    ecc_window = duration(p.gpu_ecc_window_seconds)
    throttled = kvscale("kvscale_gpu_clock_event_active", exp, f'reason=~"{p.gpu_throttle_reasons}"')
    return [
        Alert(GPU_TEMPERATURE_HIGH, f"{temperature} > {number(p.gpu_temperature_alert)}",
              p.gpu_temperature_for_seconds, p.gpu_health_severity,
              "A GPU is running hot; it will slow its clocks and its pods will slow down.",
              f"{GPU_TEXT} is at {{{{ $value }}}} °C, above {number(p.gpu_temperature_alert)} °C for "
              f"{duration(p.gpu_temperature_for_seconds)}. Check the node's cooling and fans.",
              temperature),
        Alert(GPU_ECC_ERRORS, f"({seen_in(ecc, ecc_window)}) > 0", 0, p.gpu_health_severity,
              "A GPU reported uncorrectable ECC memory errors; its memory is failing.",
              f"{GPU_TEXT} counted {{{{ $value | printf \"%.0f\" }}}} uncorrectable ECC errors in the last "
              f"{ecc_window}. "
              "The processes on it may have read corrupt memory; the GPU needs a reset and may need replacing.",
              ecc),
        Alert(GPU_CLOCKS_THROTTLED, f"{throttled} == 1", p.gpu_throttle_for_seconds, p.gpu_health_severity,
              "A GPU's clocks are held down by a thermal or hardware slowdown; its pods run slower.",
              f"{GPU_TEXT} has been slowed by {{{{ $labels.reason }}}} for {duration(p.gpu_throttle_for_seconds)}. "
              "Tokens per second on it drop while the reason holds.",
              throttled),
    ]


def gpu_alerts(p: Policy) -> Group:
    return Group("kvscale-gpu-alerts", tuple(_hardware(p) + _health(p)))
