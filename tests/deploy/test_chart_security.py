"""Security of the rendered manifests: containers, RBAC, and checkov's Kubernetes checks with each
finding explained (or fixed by a value, which the test shows)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from tests.deploy.chart import COMBINATIONS, render

CHECKOV = REPO / ".tools" / "checkov" / "bin" / "checkov"
WORKLOADS = {"DaemonSet", "Deployment"}

# Every checkov finding on the default install, and why it stays.
EXPLAINED: dict[tuple[str, str], str] = {
    ("CKV_K8S_43", "DaemonSet.kvscale-exporter"): "image.digest pins by digest; the default is the release's "
                                                  "immutable version tag (appVersion)",
    ("CKV_K8S_43", "Deployment.kvscale-adapter"): "as above",
    ("CKV_K8S_15", "DaemonSet.kvscale-exporter"): "IfNotPresent: version tags are never re-pushed, and a node "
                                                  "must not need the registry to restart the exporter",
    ("CKV_K8S_15", "Deployment.kvscale-adapter"): "as above; the HPA depends on the adapter restarting offline",
    ("CKV_K8S_38", "DaemonSet.kvscale-exporter"): "the token is needed: the exporter watches the pods of its node",
    ("CKV_K8S_38", "Deployment.kvscale-adapter"): "the token is needed: pod inventory, SubjectAccessReviews, the "
                                                  "front-proxy CA ConfigMap",
    ("CKV_K8S_23", "DaemonSet.kvscale-exporter"): "uid 0 only to connect to the kubelet's root-owned pod-resources "
                                                  "socket; no capabilities, no escalation, read-only root. "
                                                  "exporter.podResources.enabled=false runs it as 65532",
    ("CKV_K8S_40", "DaemonSet.kvscale-exporter"): "same cause as CKV_K8S_23",
    ("CKV2_K8S_6", "Pod.kvscale-exporter"): "the NetworkPolicy is optional: the API server's source addresses "
                                            "differ per cluster (networkPolicy.enabled + apiServerCIDRs)",
    ("CKV2_K8S_6", "Pod.kvscale-adapter"): "as above",
}
# Values that fix every finding a value can fix.
HARDENED = {"exporter": {"podResources": {"enabled": False}},
            "image": {"digest": "sha256:" + "0" * 64, "pullPolicy": "Always"},
            "networkPolicy": {"enabled": True, "apiServerCIDRs": ["10.0.0.0/16"]}}


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


@pytest.mark.parametrize("combo", sorted(COMBINATIONS))
def test_containers_are_unprivileged_and_bounded(combo: str) -> None:
    workloads = [o for o in render(COMBINATIONS[combo]).objects if o["kind"] in WORKLOADS]
    assert workloads
    for obj in workloads:
        pod = obj["spec"]["template"]["spec"]
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in _containers(obj):
            sc = c["securityContext"]
            assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False, c["name"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert set(c["resources"]) == {"requests", "limits"}
            assert {"cpu", "memory"} <= set(c["resources"]["limits"]) and {"cpu", "memory"} <= set(
                c["resources"]["requests"])
        for volume in pod.get("volumes", []):
            if "hostPath" in volume:
                assert volume["hostPath"]["path"] == "/var/lib/kubelet/pod-resources"
                mounts = [m for c in _containers(obj) for m in c["volumeMounts"] if m["name"] == volume["name"]]
                assert mounts and all(m["readOnly"] for m in mounts)


def test_exporter_runs_non_root_without_pod_resources() -> None:
    pod = render(COMBINATIONS["no-pod-resources"]).one("DaemonSet")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 65532
    assert all("hostPath" not in v for v in pod["volumes"])


@pytest.mark.parametrize("combo", sorted(COMBINATIONS))
def test_rbac_grants_no_wildcards(combo: str) -> None:
    rendered = render(COMBINATIONS[combo])
    roles = rendered.of_kind("ClusterRole") + rendered.of_kind("Role")
    assert roles
    for role in roles:
        for rule in role["rules"]:
            for key in ("verbs", "resources", "apiGroups", "nonResourceURLs", "resourceNames"):
                assert "*" not in rule.get(key, []), (role["metadata"]["name"], rule)
            assert set(rule["verbs"]) <= {"get", "list", "watch", "create"}, rule
            if "create" in rule["verbs"]:
                assert rule["resources"] == ["subjectaccessreviews"], rule
    for binding in rendered.of_kind("ClusterRoleBinding") + rendered.of_kind("RoleBinding"):
        assert binding["roleRef"]["name"] not in {"cluster-admin", "admin", "edit"}
        assert all(s["kind"] == "ServiceAccount" for s in binding["subjects"])


def _checkov(objects: list[dict[str, Any]], tmp_path: Path) -> set[tuple[str, str]]:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run .ci/setup.sh test")
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump_all(objects), encoding="utf-8")
    result = subprocess.run([str(CHECKOV), "-f", str(manifest), "--framework", "kubernetes", "-o", "json",
                             "--quiet", "--skip-download"], capture_output=True, text=True, timeout=300,
                            check=False, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode in (0, 1), result.stderr[-2000:]
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    assert report["summary"]["parsing_errors"] == 0 and report["summary"]["resource_count"] >= len(objects) // 2
    found = set()
    for check in report["results"]["failed_checks"]:
        # "Kind.namespace.name" for resources, "Kind.name.labels..." for graph checks.
        kind, *rest = check["resource"].split(".")
        name = rest[1] if rest[0] == "monitoring" else rest[0]
        found.add((check["check_id"], f"{kind}.{name}"))
    return found


def test_checkov_findings_on_the_default_install_are_all_explained(tmp_path: Path) -> None:
    assert _checkov(render().objects, tmp_path) == set(EXPLAINED)


def test_checkov_finds_nothing_new_in_the_other_combinations(tmp_path: Path) -> None:
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for combo in ("hpa", "keda", "dra", "prometheus-source", "cert-manager", "podmonitor"):
        for obj in render({**COMBINATIONS[combo], **HARDENED}).objects:
            objects[(obj["kind"], obj["metadata"]["name"])] = obj
    assert _checkov(list(objects.values()), tmp_path) <= set(EXPLAINED)


def test_checkov_passes_where_a_value_fixes_the_finding(tmp_path: Path) -> None:
    found = _checkov(render(HARDENED).objects, tmp_path)
    assert found == {k for k in EXPLAINED if k[0] == "CKV_K8S_38"}
