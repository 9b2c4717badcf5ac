"""scalerMetadata -> Trigger (pure, table-driven), the activation source readers (pure), and the
scaler's settings: every key checked, nothing defaulted silently."""

from __future__ import annotations

import math

import pytest

from adapter.provider import served_metrics
from adapter.scaler import MetadataError, NoDataError
from adapter.scaler.activation import demand_from_exposition, demand_from_promql
from adapter.scaler.trigger import Activation, Trigger, Workload, parse_trigger
from adapter.selectors import parse_selector
from adapter.settings import SettingsError, load_settings
from exporter.contract.exposition import parse

SERVED = served_metrics(60)
BASE = {"family": "kvscale_vllm_requests_waiting", "deployment": "llama", "target": "5"}


def _parse(metadata: dict[str, str]) -> Trigger:
    return parse_trigger(metadata, served=SERVED, default_quantile="0.95", sources=("gateway",), prometheus=True)


@pytest.mark.parametrize(("metadata", "field", "expected"), [
    (BASE, "target", 5.0),
    (BASE, "quantile", None),
    (BASE, "activation_target", 0.0),
    (BASE, "workload", Workload("deployment", "llama")),
    ({**BASE, "target": "0.5", "activationTarget": "2"}, "activation_target", 2.0),
    ({"family": "kvscale_vllm_ttft_seconds", "deployment": "l", "target": "0.8"}, "quantile", "0.95"),
    ({"family": "kvscale_vllm_ttft_seconds", "deployment": "l", "target": "0.8", "quantile": "0.990"},
     "quantile", "0.99"),
    ({"family": "kvscale_vllm_requests_waiting", "statefulset": "s", "target": "1"}, "workload",
     Workload("statefulset", "s")),
    ({"family": "kvscale_vllm_requests_waiting", "podSelector": "app=vllm,tier in (a,b)", "target": "1"},
     "workload", Workload("podSelector", selector=parse_selector("app=vllm,tier in (a,b)"))),
    ({**BASE, "aggregation": "sum"}, "target", 5.0),
    ({"family": "kvscale_vllm_kv_cache_usage_ratio", "deployment": "l", "aggregation": "mean", "target": ".7"},
     "target", 0.7),
    # KEDA's own keys ride along in the same map and are KEDA's business.
    ({**BASE, "scalerAddress": "kvscale:9443", "enableTLS": "true", "unsafeSsl": "false"}, "target", 5.0),
    # <key>FromEnv: the value KEDA resolved from the workload's environment.
    ({"family": "kvscale_vllm_requests_waiting", "deployment": "l", "targetFromEnv": "7"}, "target", 7.0),
    ({**BASE, "activationSource": "gateway", "activationMetric": "q", "activationLabels": "pool=a"},
     "activation", Activation("gateway", metric="q", labels=parse_selector("pool=a"))),
    ({**BASE, "activationSource": "prometheus", "activationQuery": "sum(q)", "activationSourceTarget": "2"},
     "activation", Activation("prometheus", query="sum(q)", threshold=2.0)),
])
def test_metadata_reads_into_a_trigger(metadata: dict[str, str], field: str, expected: object) -> None:
    assert getattr(_parse(metadata), field) == expected


@pytest.mark.parametrize(("metadata", "message"), [
    ({"deployment": "l", "target": "5"}, "needs 'family'"),
    ({**BASE, "family": "kvscale_gpu_power_watts"}, "not one kvscale serves for autoscaling"),
    ({**BASE, "family": "kvscale_vllm_up"}, "not one kvscale serves for autoscaling"),
    ({"family": "kvscale_vllm_requests_waiting", "target": "5"}, "exactly one of deployment"),
    ({**BASE, "podSelector": "app=x"}, "exactly one of deployment"),
    ({**BASE, "statefulset": "llama"}, "got deployment, statefulset"),
    ({**BASE, "deployment": "  "}, "'deployment' is empty"),
    ({"family": "kvscale_vllm_requests_waiting", "podSelector": "app in (", "target": "1"}, "not a label selector"),
    ({"family": "kvscale_vllm_requests_waiting", "podSelector": "", "target": "1"}, "is empty"),
    ({**BASE, "target": "0"}, "must be a finite number > 0"),
    ({**BASE, "target": "nan"}, "must be a finite number > 0"),
    ({**BASE, "target": "inf"}, "must be a finite number > 0"),
    ({**BASE, "target": "5m"}, "not a number"),
    ({"family": "kvscale_vllm_requests_waiting", "deployment": "l"}, "needs 'target'"),
    ({**BASE, "activationTarget": "-1"}, "must be a finite number >= 0"),
    ({**BASE, "quantile": "0.95"}, "has no quantiles"),
    ({"family": "kvscale_vllm_ttft_seconds", "deployment": "l", "target": "1", "quantile": "1"}, "strictly between"),
    ({"family": "kvscale_vllm_ttft_seconds", "deployment": "l", "target": "1", "quantile": "p95"}, "not a number"),
    ({**BASE, "aggregation": "mean"}, "aggregates over pods by sum"),
    ({**BASE, "Target": "5"}, "unknown scalerMetadata key 'Target'"),
    ({**BASE, "threshold": "5"}, "unknown scalerMetadata key 'threshold'"),
    ({**BASE, "targetFromEnv": "6"}, "gives 'target' twice"),
    ({**BASE, "activationMetric": "q"}, "needs activationSource"),
    ({**BASE, "activationSource": "gateway"}, "takes activationMetric"),
    ({**BASE, "activationSource": "gateway", "activationQuery": "q", "activationMetric": "q"},
     "takes activationMetric"),
    ({**BASE, "activationSource": "prometheus", "activationMetric": "q"}, "takes activationQuery"),
    ({**BASE, "activationSource": "router", "activationMetric": "q"}, "'router' is not configured"),
    ({**BASE, "activationSource": "gateway", "activationMetric": "q", "activationSourceTarget": "x"}, "not a number"),
    ({**BASE, "family": "x" * 5000}, "longer than"),
])
def test_bad_metadata_is_refused_with_the_key_named(metadata: dict[str, str], message: str) -> None:
    with pytest.raises(MetadataError, match=message):
        _parse(metadata)


def test_prometheus_activation_needs_a_prometheus_url() -> None:
    with pytest.raises(MetadataError, match="needs the adapter's --prometheus-url"):
        parse_trigger({**BASE, "activationSource": "prometheus", "activationQuery": "q"}, served=SERVED,
                      default_quantile="0.95", sources=(), prometheus=False)


def test_the_policy_quantile_is_the_default() -> None:
    trigger = parse_trigger({"family": "kvscale_vllm_ttft_seconds", "deployment": "l", "target": "1"},
                            served=SERVED, default_quantile="0.9")
    assert trigger.quantile == "0.9" and str(trigger.selector) == "quantile=0.9"


QUEUE = parse("""# TYPE q gauge
q{pool="a",band="0"} 2
q{pool="a",band="1"} 3.5
q{pool="b",band="0"} 7
q{pool="c",band="0"} NaN
""")


@pytest.mark.parametrize(("labels", "expected"), [("pool=a", 5.5), ("", 12.5), ("pool=b", 7.0),
                                                  ("pool in (a,b),band=0", 9.0)])
def test_a_queue_is_the_sum_of_its_matching_series(labels: str, expected: float) -> None:
    assert demand_from_exposition(QUEUE, "q", parse_selector(labels)) == expected


@pytest.mark.parametrize(("metric", "labels"), [("q", "pool=c"), ("q", "pool=z"), ("missing", "")])
def test_no_finite_matching_series_is_unknown_not_zero(metric: str, labels: str) -> None:
    with pytest.raises(NoDataError, match="no series"):
        demand_from_exposition(QUEUE, metric, parse_selector(labels))


def test_promql_demand_sums_finite_values_and_empty_is_unknown() -> None:
    result = [{"metric": {}, "value": [1.0, "3"]}, {"metric": {}, "value": [1.0, "NaN"]},
              {"metric": {}, "value": [1.0, "1.5"]}]
    assert demand_from_promql(result, "q") == 4.5
    with pytest.raises(NoDataError):
        demand_from_promql([], "q")
    assert math.isclose(demand_from_promql([{"value": [0, "0"]}], "q"), 0.0)  # a known empty queue is 0


TLS = ["--tls-cert-file", "c.pem", "--tls-private-key-file", "k.pem", "--pods-file", "p.yaml",
       "--client-ca-file", "ca.pem", "--exporter-url", "http://e:9400"]


def test_settings_read_the_scaler_flags_and_environment() -> None:
    s = load_settings([*TLS, "--keda-port", "9443", "--keda-client-ca-file", "keda-ca.pem",
                       "--keda-activation-source", "gateway=http://epp.llm-d:9090/metrics"],
                      {"KVSCALE_ADAPTER_KEDA_ALLOWED_NAMES": "keda-operator, keda-metrics"})
    assert s.keda_port == 9443 and s.keda_allowed_names == ("keda-operator", "keda-metrics")
    assert s.keda_activation_sources == {"gateway": "http://epp.llm-d:9090/metrics"}
    assert load_settings(TLS, {}).keda_port == 0  # off unless a port is set


@pytest.mark.parametrize(("argv", "message"), [
    (["--keda-port", "9443"], "needs --keda-client-ca-file and --keda-allowed-names"),
    (["--keda-port", "9443", "--keda-client-ca-file", "ca.pem"], "needs --keda-client-ca-file and"),
    (["--keda-port", "70000", "--keda-client-ca-file", "ca.pem", "--keda-allowed-names", "k"], "is not a port"),
    (["--keda-activation-source", "gateway"], "is not NAME=http"),
    (["--keda-activation-source", "gateway=file:///etc/passwd"], "is not NAME=http"),
    (["--keda-activation-source", "prometheus=http://p:9090"], "reserved or given twice"),
    (["--keda-activation-source", "g=http://a", "--keda-activation-source", "g=http://b"], "given twice"),
])
def test_bad_scaler_settings_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings([*TLS, *argv], {})
