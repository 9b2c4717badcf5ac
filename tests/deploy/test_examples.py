"""deploy/examples: valid objects, and the same targets and selectors as the chart renders from the
default policy, so an example never drifts from the policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate
import pytest
import yaml

from tests.conftest import REPO
from tests.deploy.chart import CHART, render, schema_path

EXAMPLES = REPO / "deploy" / "examples"
TARGET = {"name": "llama-3-8b", "namespace": "llm"}


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLES / name).read_text(encoding="utf-8")) if d]


@pytest.mark.parametrize("name", ["vllm-deployment.yaml", "hpa.yaml", "keda-scaledobject.yaml"])
def test_example_objects_validate(name: str) -> None:
    for doc in _docs(name):
        if doc["kind"] == "ScaledObject":
            schema = json.loads(schema_path("ScaledObject").read_text(encoding="utf-8"))
            assert not list(jsonschema.Draft7Validator(schema).iter_errors(doc))
            continue
        for version in ("1.31.0", "1.34.0", "1.37.0"):
            kubernetes_validate.validate(doc, version, strict=True)


def test_vllm_example_runs_with_operator_flags_and_the_scrape_label() -> None:
    (deployment,) = _docs("vllm-deployment.yaml")
    pod = deployment["spec"]["template"]
    args = pod["spec"]["containers"][0]["args"]
    assert {"--gpu-memory-utilization=0.9", "--max-num-seqs=256", "--enable-chunked-prefill"} <= set(args)
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    key, value = values["exporter"]["podSelector"].split("=")
    assert pod["metadata"]["labels"][key] == value
    assert pod["metadata"]["annotations"]["kvscale.io/port"] == str(values["exporter"]["podPort"])


def test_hpa_example_is_what_the_chart_renders_from_the_default_policy() -> None:
    (example,) = _docs("hpa.yaml")
    chart = render({"autoscaling": {"mode": "hpa", "target": TARGET}}).one("HorizontalPodAutoscaler")
    for key in ("scaleTargetRef", "metrics", "minReplicas", "maxReplicas", "behavior"):
        assert example["spec"][key] == chart["spec"][key], key


def test_keda_example_is_what_the_chart_renders_from_the_default_policy() -> None:
    (example,) = _docs("keda-scaledobject.yaml")
    chart = render({"autoscaling": {"mode": "keda", "target": TARGET}}).one("ScaledObject")
    assert example["spec"] == chart["spec"]


def test_kube_prometheus_stack_values_pick_up_the_chart() -> None:
    (stack,) = _docs("kube-prometheus-stack-values.yaml")
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    sidecar = stack["grafana"]["sidecar"]["dashboards"]
    dashboards = values["dashboards"]
    assert (sidecar["label"], sidecar["labelValue"], sidecar["folderAnnotation"]) == (
        dashboards["label"], dashboards["labelValue"], dashboards["folderAnnotation"])
    spec = stack["prometheus"]["prometheusSpec"]
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False and spec["ruleSelectorNilUsesHelmValues"] is False
    assert values["monitoringLabels"] == {"release": "kube-prometheus-stack"}
    assert Path(EXAMPLES / "kube-prometheus-stack-values.yaml").read_text(encoding="utf-8").count(
        "helm install kube-prometheus-stack") == 1
