"""Every combination renders with Helm's engine, lints clean, and every object validates: core kinds
with kubernetes-validate --strict (1.31, 1.34, 1.37), Prometheus Operator and KEDA kinds with their
CRD schemas."""

from __future__ import annotations

import json
from typing import Any

import helm_python as helm
import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate
import pytest

from tests.deploy.chart import CHART, COMBINATIONS, VLLM, render, schema_path

KUBE_VERSIONS = ("1.31.0", "1.34.0", "1.37.0")
CRD_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule", "ScaledObject"}
# cert-manager's kinds: no schema of them is kept here; their fields are checked by name below.
UNCHECKED_KINDS = {"Certificate", "Issuer"}


def _validate_core(obj: dict[str, Any], version: str) -> None:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} at {version}: {exc.message} at {list(exc.path)}")


@pytest.mark.parametrize("combo", sorted(COMBINATIONS))
def test_combination_lints_without_errors(combo: str) -> None:
    result = helm.lint(str(CHART), COMBINATIONS[combo], strict=True, namespace="monitoring")
    assert result["errors"] == [], result
    assert [m for m in result["messages"] if m["severity"] >= 2] == [], result["messages"]


@pytest.mark.parametrize("combo", sorted(COMBINATIONS))
def test_every_object_validates(combo: str) -> None:
    rendered = render(COMBINATIONS[combo])
    assert rendered.objects
    versions = KUBE_VERSIONS if "tolerance" not in combo else KUBE_VERSIONS[1:]
    for obj in rendered.objects:
        kind = obj["kind"]
        if kind in CRD_KINDS:
            schema = json.loads(schema_path(kind).read_text(encoding="utf-8"))
            errors = [f"{e.json_path}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(obj)]
            assert not errors, (kind, errors)
        elif kind in UNCHECKED_KINDS:
            assert obj["apiVersion"] == "cert-manager.io/v1"
        else:
            for version in versions:
                _validate_core(obj, version)


def test_hpa_tolerance_needs_a_newer_cluster() -> None:
    """The per-direction tolerance is a 1.33+ field: 1.31's strict schema refuses it, which is why it is opt-in."""
    hpa = render(COMBINATIONS["hpa-tolerance"]).one("HorizontalPodAutoscaler")
    assert hpa["spec"]["behavior"]["scaleUp"]["tolerance"] == "50m"
    assert hpa["spec"]["behavior"]["scaleDown"]["tolerance"] == "150m"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(hpa, "1.31.0", strict=True)
    assert "tolerance" not in json.dumps(render(COMBINATIONS["hpa"]).one("HorizontalPodAutoscaler"))


def test_defaults_install_what_the_issue_lists() -> None:
    r = render()
    assert sorted(set(r.kinds())) == sorted({
        "APIService", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet", "Deployment",
        "PodDisruptionBudget", "PrometheusRule", "RoleBinding", "Secret", "Service", "ServiceAccount",
        "ServiceMonitor"})
    assert len(r.of_kind("ConfigMap")) == 5  # the policy and four dashboards
    adapter = r.one("Deployment", "adapter")
    assert adapter["spec"]["replicas"] == 2
    spread = adapter["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    env = {e["name"]: e.get("value") for e in adapter["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KVSCALE_ADAPTER_AUTHORIZATION_MODE"] == "delegated"
    assert env["KVSCALE_POLICY"] == "/etc/kvscale/policy.yaml"
    assert r.one("PodDisruptionBudget")["spec"]["minAvailable"] == 1
    assert "kubectl get --raw /apis/custom.metrics.k8s.io/v1beta2" in r.notes
    assert "honorLabels: true" in r.notes


def test_exporter_daemonset_reads_node_gpu_and_policy() -> None:
    ds = render().one("DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["KVSCALE_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["KVSCALE_POLICY"]["value"] == "/etc/kvscale/policy.yaml"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    socket = next(m for m in container["volumeMounts"] if m["name"] == "pod-resources")
    assert socket["readOnly"] is True
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["command"] == ["kvscale-exporter"]


@pytest.mark.parametrize("combo", ["defaults", "podmonitor"])
def test_exporter_scrape_honors_labels(combo: str) -> None:
    r = render(COMBINATIONS[combo])
    kind = "ServiceMonitor" if combo == "defaults" else "PodMonitor"
    monitor = r.one(kind)
    endpoints = monitor["spec"]["endpoints" if kind == "ServiceMonitor" else "podMetricsEndpoints"]
    assert [e["honorLabels"] for e in endpoints] == [True]
    # kube-prometheus-stack's default selector, and a job name the policy's exporter_selector expects.
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == "kvscale-exporter"
    assert len(r.of_kind("ServiceMonitor") + r.of_kind("PodMonitor")) == 1


def test_servicemonitor_off_leaves_no_monitor() -> None:
    r = render(COMBINATIONS["no-servicemonitor"])
    assert not r.of_kind("ServiceMonitor") and not r.of_kind("PodMonitor")


def test_apiservices_prefer_v1beta2_and_trust_the_generated_ca() -> None:
    r = render()
    services = {a["spec"]["version"]: a["spec"] for a in r.of_kind("APIService")}
    assert set(services) == {"v1beta1", "v1beta2"}
    assert services["v1beta2"]["versionPriority"] > services["v1beta1"]["versionPriority"]
    secret = r.one("Secret")
    for spec in services.values():
        assert "insecureSkipTLSVerify" not in spec
        assert spec["caBundle"] == secret["data"]["ca.crt"]
        assert spec["service"] == {"name": "kvscale-adapter", "namespace": "monitoring", "port": 443}


def test_cert_manager_issues_the_serving_cert_and_injects_the_ca() -> None:
    r = render(COMBINATIONS["cert-manager"])
    assert not r.of_kind("Secret")
    cert = r.one("Certificate")
    assert "kvscale-adapter.monitoring.svc" in cert["spec"]["dnsNames"]
    assert cert["spec"]["secretName"] == "kvscale-adapter-serving-cert"
    for api in r.of_kind("APIService"):
        assert api["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "monitoring/kvscale-adapter"
        assert "caBundle" not in api["spec"] and "insecureSkipTLSVerify" not in api["spec"]
    assert r.one("Issuer")["spec"] == {"selfSigned": {}}
    external = render(COMBINATIONS["cert-manager-issuer"])
    assert not external.of_kind("Issuer")
    assert external.one("Certificate")["spec"]["issuerRef"] == {"name": "ca", "kind": "ClusterIssuer"}


def test_hpa_scales_the_named_deployment_on_policy_targets() -> None:
    hpa = render(COMBINATIONS["hpa"]).one("HorizontalPodAutoscaler")
    assert hpa["metadata"]["namespace"] == VLLM["namespace"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": VLLM["name"]}
    metrics = {m["pods"]["metric"]["name"]: m["pods"] for m in hpa["spec"]["metrics"]}
    assert metrics["kvscale_vllm_requests_waiting"]["target"] == {"type": "AverageValue", "averageValue": "5"}
    ttft = metrics["kvscale_vllm_ttft_seconds"]
    assert ttft["metric"]["selector"] == {"matchLabels": {"quantile": "0.95"}}
    assert ttft["target"] == {"type": "AverageValue", "averageValue": "800m"}
    assert metrics["kvscale_vllm_kv_cache_usage_ratio"]["target"]["averageValue"] == "750m"
    assert hpa["spec"]["behavior"]["scaleDown"] == {"stabilizationWindowSeconds": 300}


def test_scaledobject_queries_prometheus_with_policy_thresholds() -> None:
    so = render(COMBINATIONS["keda"]).one("ScaledObject")
    triggers = {t["name"]: t for t in so["spec"]["triggers"]}
    assert {t["type"] for t in triggers.values()} == {"prometheus"}
    assert triggers["queue"]["metadata"]["threshold"] == "5"
    assert triggers["queue"]["metricType"] == "AverageValue"
    assert 'kvscale_vllm_requests_waiting{namespace="llm", pod=~"llama-3-8b-' in triggers["queue"]["metadata"]["query"]
    assert triggers["ttft"]["metadata"]["threshold"] == "0.8"
    assert 'quantile="0.95"' in triggers["ttft"]["metadata"]["query"]
    assert triggers["kv-cache"]["metadata"]["threshold"] == "0.75"
    behavior = so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300


def test_dra_adds_resourceslice_read_to_the_exporter_only() -> None:
    def exporter_rules(values: dict[str, Any]) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = render(values).one("ClusterRole", "exporter")["rules"]
        return rules
    assert all("resource.k8s.io" not in r["apiGroups"] for r in exporter_rules({}))
    dra = [r for r in exporter_rules(COMBINATIONS["dra"]) if "resource.k8s.io" in r["apiGroups"]]
    assert dra and "resourceslices" in dra[0]["resources"] and set(dra[0]["verbs"]) == {"get", "list", "watch"}


def test_adapter_rbac_delegates_authn_and_authz() -> None:
    r = render()
    bindings = {b["roleRef"]["name"]: b for b in r.of_kind("ClusterRoleBinding") + r.of_kind("RoleBinding")}
    assert "system:auth-delegator" in bindings
    reader = bindings["extension-apiserver-authentication-reader"]
    assert reader["kind"] == "RoleBinding" and reader["metadata"]["namespace"] == "kube-system"
    rules = r.one("ClusterRole", "adapter")["rules"]
    assert {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]} in rules


def test_network_policy_needs_the_api_server_addresses() -> None:
    with pytest.raises(helm.HelmRenderError, match="apiServerCIDRs"):
        render({"networkPolicy": {"enabled": True}})
    policies = render(COMBINATIONS["network-policy"]).of_kind("NetworkPolicy")
    adapter = next(p for p in policies if "adapter" in p["metadata"]["name"])
    peers = adapter["spec"]["ingress"][0]["from"]
    assert {"ipBlock": {"cidr": "10.0.0.0/16"}} in peers
    assert any("namespaceSelector" in p for p in peers)


def test_dashboards_are_labelled_for_the_grafana_sidecar() -> None:
    r = render({"dashboards": {"label": "my_dashboards", "labelValue": "yes", "folder": "LLM"}})
    maps = [c for c in r.of_kind("ConfigMap") if "dashboard" in c["metadata"]["name"]]
    assert len(maps) == 4
    for cm in maps:
        assert cm["metadata"]["labels"]["my_dashboards"] == "yes"
        assert cm["metadata"]["annotations"]["grafana_folder"] == "LLM"
    default = [c for c in render().of_kind("ConfigMap") if "dashboard" in c["metadata"]["name"]]
    assert {c["metadata"]["labels"]["grafana_dashboard"] for c in default} == {"1"}


def test_prometheusrule_labels_are_configurable() -> None:
    rule = render({"monitoringLabels": {"release": "prom"}, "prometheusRule": {"labels": {"team": "llm"}}})
    labels = rule.one("PrometheusRule")["metadata"]["labels"]
    assert labels["release"] == "prom" and labels["team"] == "llm"
