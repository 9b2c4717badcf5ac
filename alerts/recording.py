"""Recording rules: per-model and fleet aggregates, vLLM histogram quantiles, HPA joins.

Names follow ``level:metric:operations`` (kubernetes-mixin): the level lists the labels
kept, the operations say how the value was made. Dashboards and alerts read these.
"""

from __future__ import annotations

from alerts.model import Group, Recording
from alerts.promql import duration, kvscale, matchers, number, vllm
from exporter.contract import catalog
from exporter.contract.catalog import QUANTILES
from exporter.contract.policy import Policy
from exporter.contract.vllm_names import COUNTERS, DIRECT, HISTOGRAMS

# vLLM's admission counter as the exporter reads it; the recording rule keeps vLLM's per-reason
# breakdown for Prometheus-mode users (the alert reads the exporter's all-reasons rate).
ADMISSION_REJECTIONS = COUNTERS["admission_rejections"][0]
REQUEST_SUCCESS = DIRECT["request_success"][0]


def model_labels(config: Policy) -> str:
    """The labels of a per-model aggregate: the cluster label first, as in kubernetes-mixin."""
    return f"{config.cluster_label}, namespace, model_name"


def pod_labels(config: Policy) -> str:
    return f"{config.cluster_label}, namespace, pod, model_name"


def request_rate(config: Policy, level: str = "namespace_pod_model_reason") -> str:
    """The recording rule of vLLM's finished requests per second, by finished_reason."""
    return f"{level}:vllm_{_base(REQUEST_SUCCESS)}:rate{duration(config.rate_window_seconds)}"

# Per-model and fleet aggregates follow the catalog's aggregation: counts and rates are summed;
# per-pod ratios and saturation get the average and the worst pod; quantiles the worst pod.
_VLLM = catalog.of_subsystem("vllm")
_SUMMED = tuple(f.name for f in _VLLM if f.aggregation == "sum")
_AVERAGED = tuple(f.name for f in _VLLM if f.aggregation in ("mean", "max") and not f.quantiled)
_WORST_QUANTILE = tuple(f.name for f in _VLLM if f.quantiled)


def _base(name: str) -> str:
    """vLLM counter name without ``_total``, as recording rules name their rate."""
    return name.removesuffix("_total")


def aggregates(config: Policy) -> Group:
    """Per-model and fleet aggregates of the exporter's kvscale_* series."""
    exp = config.exporter_selector
    by_model, cl = model_labels(config), config.cluster_label
    rules: list[Recording] = []
    for name in _SUMMED:
        rules.append(Recording(f"namespace_model:{name}:sum", f"sum by ({by_model}) ({kvscale(name, exp)})"))
        rules.append(Recording(f"cluster:{name}:sum", f"sum by ({cl}) ({kvscale(name, exp)})"))
    for name in _AVERAGED:
        rules.append(Recording(f"namespace_model:{name}:avg", f"avg by ({by_model}) ({kvscale(name, exp)})"))
        rules.append(Recording(f"namespace_model:{name}:max", f"max by ({by_model}) ({kvscale(name, exp)})"))
    # Worst pod's quantile: per-pod quantiles cannot be merged exactly; the histogram rules can.
    for name in _WORST_QUANTILE:
        rules.append(Recording(f"namespace_model_quantile:{name}:max",
                               f"max by ({by_model}, quantile) ({kvscale(name, exp)})"))
    # Token-weighted cost: cost_i * tokens_i is each pod's spend rate, so the ratio is the model's cost.
    cost = kvscale("kvscale_vllm_cost_per_million_tokens_dollars", exp)
    tokens = (f"({kvscale('kvscale_vllm_prompt_tokens_per_second', exp)}"
              f" + {kvscale('kvscale_vllm_generation_tokens_per_second', exp)})")
    rules.append(Recording(
        "namespace_model:kvscale_vllm_cost_per_million_tokens_dollars:token_weighted",
        f"sum by ({by_model}) ({cost} * {tokens})\n/\nsum by ({by_model}) ({tokens} and {cost})"))
    used = kvscale("kvscale_gpu_memory_used_bytes", exp)
    total = kvscale("kvscale_gpu_memory_total_bytes", exp)
    rules.append(Recording("node_gpu:kvscale_gpu_memory_usage:ratio", f"{used} / {total}"))
    rules.append(Recording("node:kvscale_gpu_utilization_ratio:avg",
                           f"avg by ({cl}, node) ({kvscale('kvscale_gpu_utilization_ratio', exp)})"))
    return Group("kvscale-aggregates", tuple(rules))


def _histogram_rules(short: str, config: Policy) -> list[Recording]:
    name = HISTOGRAMS[short][0]  # newest spelling only: older aliases would double count
    window = duration(config.rate_window_seconds)
    sel = config.vllm_selector
    by_pod, by_model = pod_labels(config), model_labels(config)
    pod_rate = f"namespace_pod_model:vllm_{name}_bucket:rate{window}"
    model_rate = f"namespace_model:vllm_{name}_bucket:rate{window}"
    rules = [
        # vLLM labels each data-parallel engine: sum the engines away, keep le.
        Recording(pod_rate, f"sum by ({by_pod}, le) (rate({vllm(name + '_bucket', sel)}[{window}]))"),
        Recording(model_rate, f"sum by ({by_model}, le) ({pod_rate})"),
    ]
    for level, source in (("namespace_pod_model", pod_rate), ("namespace_model", model_rate)):
        for q in QUANTILES:
            rules.append(Recording(f"{level}:vllm_{name}:histogram_quantile",
                                   f"histogram_quantile({number(q)}, {source})",
                                   (("quantile", number(q)),)))
    return rules


def vllm_histograms(config: Policy) -> Group:
    """Prometheus-mode series from vLLM's own metrics: TTFT/ITL quantiles, token and event rates."""
    window = duration(config.rate_window_seconds)
    sel = config.vllm_selector
    by_pod, by_model = pod_labels(config), model_labels(config)
    rules = _histogram_rules("ttft", config) + _histogram_rules("itl", config)
    for short in ("prompt_tokens", "generation_tokens", "preemptions"):
        name = COUNTERS[short][0]
        rules.append(Recording(f"namespace_pod_model:vllm_{_base(name)}:rate{window}",
                               f"sum by ({by_pod}) (rate({vllm(name, sel)}[{window}]))"))
    rules.append(Recording(
        f"namespace_pod_model_reason:vllm_{_base(ADMISSION_REJECTIONS)}:rate{window}",
        f"sum by ({by_pod}, reason) (rate({vllm(ADMISSION_REJECTIONS, sel)}[{window}]))"))
    # Request outcomes by finished_reason (stop, length, abort, error, ...): the error and abort alerts and
    # the SLO alerts' traffic floor read these. Only from vLLM itself: the exporter does not carry them.
    pod_requests = request_rate(config)
    rules.append(Recording(pod_requests, f"sum by ({by_pod}, finished_reason) "
                                         f"(rate({vllm(REQUEST_SUCCESS, sel)}[{window}]))"))
    rules.append(Recording(request_rate(config, "namespace_model_reason"),
                           f"sum by ({by_model}, finished_reason) ({pod_requests})"))
    return Group("kvscale-vllm-histograms", tuple(rules))


POD_WORKLOAD = "namespace_workload_pod:kube_pod_owner:relabel"
WORKLOAD_SATURATION = "namespace_workload:kvscale_vllm_saturation_ratio:avg"
HPA_SATURATION = "namespace_hpa:kvscale_vllm_saturation_ratio:avg"


def _owner(metric: str, kind: str, ksm: str) -> str:
    kind_matcher = f'owner_kind="{kind}"'
    return f"{metric}{{{matchers(ksm, kind_matcher)}}}"


def workloads(config: Policy) -> Group:
    """Pod -> Deployment/StatefulSet -> HPA, so HPA alerts can read their pods' saturation."""
    ksm = config.kube_state_metrics_selector
    exp = config.exporter_selector
    cl = config.cluster_label
    deployment_pods = (
        f"max by ({cl}, namespace, workload, pod) (\n"
        f"  label_replace(\n"
        f"    label_replace({_owner('kube_pod_owner', 'ReplicaSet', ksm)}, "
        f"\"replicaset\", \"$1\", \"owner_name\", \"(.*)\")\n"
        f"    * on ({cl}, namespace, replicaset) group_left (owner_name)\n"
        f"    topk by ({cl}, namespace, replicaset) (1, max by ({cl}, namespace, replicaset, owner_name) (\n"
        f"      {_owner('kube_replicaset_owner', 'Deployment', ksm)})),\n"
        f"    \"workload\", \"$1\", \"owner_name\", \"(.*)\"))")
    statefulset_pods = (
        f"max by ({cl}, namespace, workload, pod) (\n"
        f"  label_replace({_owner('kube_pod_owner', 'StatefulSet', ksm)}, "
        f"\"workload\", \"$1\", \"owner_name\", \"(.*)\"))")
    saturation = kvscale("kvscale_vllm_saturation_ratio", exp)
    hpa_info = f"kube_horizontalpodautoscaler_info{{{matchers(ksm)}}}"
    return Group("kvscale-workloads", (
        Recording(POD_WORKLOAD, deployment_pods, (("workload_type", "deployment"),)),
        Recording(POD_WORKLOAD, statefulset_pods, (("workload_type", "statefulset"),)),
        Recording(WORKLOAD_SATURATION,
                  f"avg by ({cl}, namespace, workload) (\n  {saturation}\n"
                  f"  * on ({cl}, namespace, pod) group_left (workload) {POD_WORKLOAD})"),
        Recording(HPA_SATURATION,
                  f"max by ({cl}, namespace, horizontalpodautoscaler) (\n"
                  f"  label_replace({hpa_info}, \"workload\", \"$1\", \"scaletargetref_name\", \"(.*)\")\n"
                  f"  * on ({cl}, namespace, workload) group_left () {WORKLOAD_SATURATION})"),
    ))


def recording_groups(config: Policy) -> tuple[Group, ...]:
    return aggregates(config), vllm_histograms(config), workloads(config)
