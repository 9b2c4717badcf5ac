"""The chart's keda.enabled path (the scaler's port, Service port, flags, KEDA's client CA) and the
external-scaler ScaledObject examples: valid against the CRD schema, accepted by the scaler's own
metadata parser, on the policy's targets and the chart's Service address."""

from __future__ import annotations

import json
from typing import Any

import helm_python as helm
import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from adapter.provider import served_metrics
from adapter.scaler.trigger import parse_trigger
from exporter.contract.policy import Policy
from tests.deploy.chart import COMBINATIONS, NAMESPACE, RELEASE, render, schema_path
from tests.deploy.test_examples import EXAMPLES

EXAMPLE = "keda-external-scaler.yaml"


def _docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLES / EXAMPLE).read_text(encoding="utf-8")) if d]


def _scalers() -> list[dict[str, Any]]:
    return [t for d in _docs() if d["kind"] == "ScaledObject" for t in d["spec"]["triggers"]]


def test_example_scaledobjects_validate_against_the_crd_schema() -> None:
    schema = json.loads(schema_path("ScaledObject").read_text(encoding="utf-8"))
    objects = [d for d in _docs() if d["kind"] == "ScaledObject"]
    assert objects
    for doc in objects:
        assert not [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
        spec = doc["spec"]
        assert spec["minReplicaCount"] == 0 and spec["cooldownPeriod"] > 0 and spec["fallback"]["replicas"] > 0
    assert {t["type"] for t in _scalers()} == {"external", "external-push"}


def test_the_trigger_authentication_gives_what_keda_external_scaler_reads() -> None:
    (auth,) = [d for d in _docs() if d["kind"] == "TriggerAuthentication"]
    assert auth["apiVersion"] == "keda.sh/v1alpha1"
    assert {p["parameter"] for p in auth["spec"]["secretTargetRef"]} == {"caCert", "tlsClientCert", "tlsClientKey"}
    assert {t["authenticationRef"]["name"] for t in _scalers()} == {auth["metadata"]["name"]}


def test_example_triggers_are_accepted_by_the_scaler_on_the_policy_targets() -> None:
    policy = Policy()
    values = yaml.safe_load((EXAMPLES.parent / "helm" / "kvscale" / "values.yaml").read_text(encoding="utf-8"))
    targets = {"kvscale_vllm_requests_waiting": policy.queue_target,
               "kvscale_vllm_ttft_seconds": policy.ttft_p95_slo_seconds}
    for trigger in _scalers():
        parsed = parse_trigger(trigger["metadata"], served=served_metrics(60), default_quantile="0.95",
                               sources=("epp",))
        assert parsed.target == targets[parsed.info.name]
        assert trigger["metadata"]["scalerAddress"] == f"{RELEASE}-adapter.{NAMESPACE}.svc:{values['keda']['port']}"
    (scaled,) = [d for d in _docs() if d["kind"] == "ScaledObject"]
    behavior = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == policy.scale_down_stabilization_seconds


def test_keda_enabled_serves_the_scaler_port_with_kedas_client_ca() -> None:
    r = render(COMBINATIONS["keda-scaler"])
    adapter = r.one("Deployment", "adapter")
    pod = adapter["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KVSCALE_ADAPTER_KEDA_PORT"] == "9443"
    assert env["KVSCALE_ADAPTER_KEDA_ALLOWED_NAMES"] == "keda-operator"
    assert env["KVSCALE_ADAPTER_KEDA_ACTIVATION_SOURCE"] == "epp=http://llm-d-epp.llm.svc:9090/metrics"
    assert env["KVSCALE_ADAPTER_KEDA_CLIENT_CA_FILE"] == "/var/run/keda-client-ca/ca.crt"
    # The same serving certificate serves both ports.
    assert env["KVSCALE_ADAPTER_TLS_CERT_FILE"] == "/var/run/serving-cert/tls.crt"
    assert {"name": "keda", "containerPort": 9443, "protocol": "TCP"} in container["ports"]
    volume = next(v for v in pod["volumes"] if v["name"] == "keda-client-ca")
    assert volume["secret"] == {"secretName": "keda-client-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    service = r.one("Service", "adapter")
    assert {"name": "keda", "port": 9443, "targetPort": "keda", "protocol": "TCP"} in service["spec"]["ports"]
    plain = render().one("Deployment", "adapter")["spec"]["template"]["spec"]["containers"][0]
    assert not [e for e in plain["env"] if e["name"].startswith("KVSCALE_ADAPTER_KEDA_")]  # off by default


def test_the_network_policy_admits_keda_on_the_scaler_port() -> None:
    policy = render({**COMBINATIONS["network-policy"], "keda": COMBINATIONS["keda-scaler"]["keda"]}).one(
        "NetworkPolicy", "adapter")
    rule = next(r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == "keda")
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}}]


def test_keda_needs_the_client_ca_secret() -> None:
    with pytest.raises(helm.HelmRenderError, match=r"keda\.clientCASecret\.name"):
        render({"keda": {"enabled": True}})


@pytest.mark.parametrize(("keda", "message"), [
    ({"enabled": True, "clientCASecret": {"name": "ca"}, "allowedNames": []}, "allowedNames"),
    ({"enabled": True, "clientCASecret": {"name": "ca"}, "activationSources": {"prometheus": "http://p"}},
     "invalid propertyName 'prometheus'"),  # the name is the scaler's own PromQL source
    ({"enabled": True, "clientCASecret": {"name": "ca"}, "activationSources": {"epp": "file:///x"}},
     "activationSources"),
])
def test_bad_keda_values_fail_with_the_key_named(keda: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=message):
        render({"keda": keda})
