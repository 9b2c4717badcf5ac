"""Rendering the chart with the real Helm engine, as objects; shared by the deploy tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

from tests.conftest import REPO

CHART = REPO / "deploy" / "helm" / "kvscale"
SCHEMAS = REPO / "tests" / "fixtures" / "schemas"
RELEASE, NAMESPACE = "kvscale", "monitoring"

# Value sets the chart must render, lint and validate with.
VLLM = {"name": "llama-3-8b", "namespace": "llm"}
COMBINATIONS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "cert-manager": {"adapter": {"certManager": {"enabled": True}}},
    "cert-manager-issuer": {"adapter": {"certManager": {"enabled": True,
                                                        "issuerRef": {"name": "ca", "kind": "ClusterIssuer"}}}},
    "no-servicemonitor": {"serviceMonitor": {"enabled": False}},
    "podmonitor": {"serviceMonitor": {"enabled": False}, "podMonitor": {"enabled": True}},
    "hpa": {"autoscaling": {"mode": "hpa", "target": VLLM, "metrics": {"kvCache": True}}},
    "hpa-tolerance": {"autoscaling": {"mode": "hpa", "target": VLLM,
                                      "scaleUp": {"tolerance": 0.05}, "scaleDown": {"tolerance": 0.15}}},
    "keda": {"autoscaling": {"mode": "keda", "target": VLLM, "metrics": {"kvCache": True}}},
    "keda-scaler": {"keda": {"enabled": True, "clientCASecret": {"name": "keda-client-ca"},
                             "activationSources": {"epp": "http://llm-d-epp.llm.svc:9090/metrics"}}},
    "dra": {"dra": {"enabled": True}},
    "no-pod-resources": {"exporter": {"podResources": {"enabled": False}}},
    "prometheus-source": {"adapter": {"source": "prometheus", "serviceMonitor": {"enabled": True}}},
    "network-policy": {"networkPolicy": {"enabled": True, "apiServerCIDRs": ["10.0.0.0/16"]}},
    "custom-policy": {"policy": {"queue_target": 8, "ttft_p95_slo_seconds": 1.5, "kv_cache_usage_alert": 0.9,
                                 "vllm_selector": 'job="vllm"', "kube_state_metrics_selector": "",
                                 "hpa_namespace_selector": 'namespace=~"llm-.*"', "rate_window_seconds": 120},
                      "autoscaling": {"mode": "hpa", "target": VLLM}},
}


@dataclass(frozen=True)
class Rendered:
    """One render: every object, and the NOTES text."""

    objects: list[dict[str, Any]]
    notes: str

    def kinds(self) -> list[str]:
        return [o["kind"] for o in self.objects]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name_part: str = "") -> dict[str, Any]:
        found = [o for o in self.of_kind(kind) if name_part in o["metadata"]["name"]]
        assert len(found) == 1, f"expected one {kind} named *{name_part}*, got {[o['metadata']['name'] for o in found]}"
        return found[0]


def render(values: dict[str, Any] | None = None, *, release: str = RELEASE) -> Rendered:
    """The chart rendered by Helm's own engine (helm-python-sdk)."""
    with helm.Chart.load(str(CHART)) as chart:
        files = chart.render(values or {}, name=release, namespace=NAMESPACE, is_install=True)
    objects: list[dict[str, Any]] = []
    notes = ""
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Rendered(objects, notes)


def schema_path(kind: str) -> Path:
    return {
        "ServiceMonitor": SCHEMAS / "monitoring.coreos.com_v1_servicemonitor.json",
        "PodMonitor": SCHEMAS / "monitoring.coreos.com_v1_podmonitor.json",
        "PrometheusRule": SCHEMAS / "monitoring.coreos.com_v1_prometheusrule.json",
        "ScaledObject": SCHEMAS / "keda.sh_v1alpha1_scaledobject.json",
    }[kind]
