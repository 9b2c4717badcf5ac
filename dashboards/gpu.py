"""GPU node: the hardware under the pods, and which pod holds which GPU.

GPU utilization is shown but labelled a weak signal (it reads ~100% at any batch size);
memory, power, temperature and XID errors are what tell a sick GPU from a busy one.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from alerts import gpu as gpu_alerts
from alerts import platform
from alerts.gpu import seen_in
from dashboards import common as c
from dashboards.panels import (
    BAD,
    OK,
    WARN,
    Line,
    PanelBuilder,
    Query,
    layout,
    stat_panel,
    table_panel,
    timeseries_panel,
)
from exporter.contract.policy import Policy

UID = "kvscale-gpu"

UP = c.metric("kvscale_gpu_up")
UTIL = c.metric("kvscale_gpu_utilization_ratio")
MEM_USED = c.metric("kvscale_gpu_memory_used_bytes")
MEM_TOTAL = c.metric("kvscale_gpu_memory_total_bytes")
POWER = c.metric("kvscale_gpu_power_watts")
TEMP = c.metric("kvscale_gpu_temperature_celsius")
CLOCK = c.metric("kvscale_gpu_sm_clock_hertz")
XID = c.metric("kvscale_gpu_xid_errors_total")
HOLDER = c.metric("kvscale_gpu_allocation_info")

GPU_LEGEND = c.legend(UTIL)
# Device series carry no pod labels (they keep their identity when a pod moves): panels that want
# pod names join the info series on (node, uuid). EXCLUSIVE keeps devices one container holds, so a
# time-sliced GPU's memory is never counted once per pod.
HOLDERS = f"{HOLDER.name}{{{c.GPU}, {c.POD}}}"
_DEVICE = c.by("node", "uuid")
EXCLUSIVE = f"({HOLDERS} and on ({_DEVICE}) (count by ({_DEVICE}) ({HOLDER.name}{{{c.GPU}}}) == 1))"
MEM_RATIO = f"{MEM_USED.name}{{{c.GPU}}} / {MEM_TOTAL.name}{{{c.GPU}}}"
ECC = c.metric("kvscale_gpu_ecc_errors_total")
CLOCK_EVENT = c.metric("kvscale_gpu_clock_event_active")
# A code's first XID creates its series at 1, which increase() cannot see: seen_in counts births too.
XID_IN_RANGE = f"sum({seen_in(f'{XID.name}{{{c.GPU}}}', '$__range')}) or vector(0)"
XID_INCREASE = f"sum by ({c.by('node', 'gpu', 'xid')}) ({seen_in(f'{XID.name}{{{c.GPU}}}', '$__rate_interval')})"
VOLATILE_ECC = f'{ECC.name}{{{c.GPU}, counter_type="volatile"}}'
ECC_INCREASE = f"sum by ({c.by('node', 'gpu', 'error_type')}) ({seen_in(VOLATILE_ECC, '$__rate_interval')})"


def _glance(t: Policy) -> list[PanelBuilder]:
    return [
        stat_panel("GPUs up", Query(f"sum({UP.name}{{{c.GPU}}})"), unit="short", base=BAD, lines=[Line(1, OK)],
                   span=6, description=UP.help, runbooks=[platform.GPU_LOST]),
        stat_panel("GPUs not answering", Query(f"count({UP.name}{{{c.GPU}}} == 0) or on () vector(0)"), unit="short",
                   lines=[Line(1, BAD)], span=6, runbooks=[platform.GPU_LOST],
                   description="GPUs NVML raised on in the last collection: fallen off the bus, driver hung, or "
                               "reset. Pods on them stall; cordon the node."),
        stat_panel("Fullest GPU memory", Query(f"max({MEM_RATIO})"), unit="percentunit",
                   lines=[Line(t.gpu_memory_usage_alert, BAD)], span=6, runbooks=[platform.GPU_MEMORY_NEAR_FULL],
                   description="vLLM preallocates its gpu_memory_utilization share at start-up; growth past "
                               f"{t.gpu_memory_usage_alert:.0%} risks out-of-memory in CUDA graphs or a second "
                               "process on the GPU."),
        stat_panel("XID errors in range", Query(XID_IN_RANGE),
                   unit="short", lines=[Line(1, BAD)], span=6, runbooks=[platform.GPU_XID_ERRORS],
                   description=XID.help + " Any XID in the range deserves a look at the node's kernel log. A code's "
                                          "first event counts too (its series is born at 1)."),
    ]


def _load(t: Policy) -> list[PanelBuilder]:
    return [
        timeseries_panel(
            "GPU utilization (weak signal)", [Query(f"{UTIL.name}{{{c.GPU}}}", GPU_LEGEND)], unit=c.unit(UTIL),
            max_val=1, lines=[Line(t.gpu_utilization_target, WARN)],
            description=UTIL.help + " Scale on queue, KV cache and TTFT instead."),
        timeseries_panel(
            "GPU memory used / total", [Query(MEM_RATIO, GPU_LEGEND)], unit="percentunit", max_val=1,
            lines=[Line(t.gpu_memory_usage_alert)], runbooks=[platform.GPU_MEMORY_NEAR_FULL],
            description=MEM_USED.help + " over " + MEM_TOTAL.help),
        timeseries_panel(
            "GPU memory by pod",
            [Query(f"sum by ({c.by('namespace', 'pod')}) ({EXCLUSIVE} * on ({_DEVICE}) group_left () "
                   f"{MEM_USED.name}{{{c.GPU}}})",
                   "{{namespace}}/{{pod}}")],
            unit="bytes", stacked=True,
            description="Framebuffer memory of the devices each pod holds alone (kubelet pod-resources, device "
                        "plugin or DRA); a time-sliced GPU is left out, since NVML cannot split it."),
        timeseries_panel(
            "SM clock", [Query(f"{CLOCK.name}{{{c.GPU}}}", GPU_LEGEND)], unit=c.unit(CLOCK),
            description=CLOCK.help + " A drop at steady load is thermal or power throttling."),
    ]


def _health(t: Policy) -> list[PanelBuilder]:
    return [
        timeseries_panel("Power", [Query(f"{POWER.name}{{{c.GPU}}}", GPU_LEGEND)], unit=c.unit(POWER), span=8,
                         description=POWER.help),
        timeseries_panel("Temperature", [Query(f"{TEMP.name}{{{c.GPU}}}", GPU_LEGEND)], unit=c.unit(TEMP), span=8,
                         lines=[Line(t.gpu_temperature_alert)], runbooks=[gpu_alerts.GPU_TEMPERATURE_HIGH],
                         description=TEMP.help + " Datacenter GPUs throttle in the mid 80s."),
        timeseries_panel("XID errors", [Query(XID_INCREASE, "{{node}} gpu{{gpu}} xid {{xid}}")], unit="short",
                         span=8, runbooks=[platform.GPU_XID_ERRORS],
                         description=XID.help + " 79 (fallen off the bus) and 48/63/64 (ECC) need the node drained."),
        timeseries_panel(
            "ECC errors", [Query(ECC_INCREASE, "{{node}} gpu{{gpu}} {{error_type}}")], unit="short", span=12,
            runbooks=[gpu_alerts.GPU_ECC_ERRORS],
            description=ECC.help + " Volatile counts per rate interval. Corrected errors are absorbed; any "
                                   "uncorrected one means the GPU needs a reset, and maybe replacing."),
        timeseries_panel(
            "Clock throttle reasons active",
            [Query(f'{CLOCK_EVENT.name}{{{c.GPU}, reason=~"{t.gpu_throttle_reasons}"}}',
                   "{{node}} gpu{{gpu}} {{reason}}")],
            unit="short", max_val=1, span=12, runbooks=[gpu_alerts.GPU_CLOCKS_THROTTLED],
            description=CLOCK_EVENT.help + " Only the reasons that alert are drawn (sw_power_cap holds on any "
                                           "GPU at full load); a line at 1 is a GPU slowed by heat or hardware."),
    ]


def _attribution() -> list[PanelBuilder]:
    return [
        table_panel(
            "Which pod holds which GPU",
            Query(f"max by ({c.by('node', 'gpu', 'uuid', 'gpu_model', 'namespace', 'pod', 'container', 'pod_uid')}, "
                  f"resource, claim) ({UP.name}{{{c.GPU}}} * on ({_DEVICE}) group_right (gpu_model) {HOLDERS})"),
            hidden=("Time",),
            description=HOLDER.help + " One row per holder (a shared GPU has several); a GPU nobody holds, or "
                        "whose attribution failed, has no row. Value is gpu_up."),
    ]


def build(thresholds: Policy) -> db.Dashboard:
    dash = c.new_dashboard(UID, "kvscale / GPU nodes",
                           "GPU health and load per node, and which pod holds which GPU.", with_node=True)
    return layout(dash, [("At a glance", _glance(thresholds)), ("Load and memory", _load(thresholds)),
                         ("Power, heat and errors", _health(thresholds)), ("Pod attribution", _attribution())])
