from __future__ import annotations

from pathlib import Path

import pytest

from adapter.inventory import InventoryError, PodInfo, load_pod_file, owned_by, parse_pod_list, select
from adapter.selectors import parse_selector
from tests.adapter.helpers import PODS


def test_pod_file_as_kubectl_prints_it() -> None:
    inv = load_pod_file(PODS)
    names = [p.name for p in inv.pods("llm")]
    # The deleting pod is gone; the Pending one stays (the HPA counts it as unready, not us).
    assert names == ["vllm-7d9c6-abcde", "vllm-7d9c6-fghij", "vllm-7d9c6-loading", "vllm-7d9c6-nodata", "vllm-sts-0"]
    assert [p.name for p in inv.pods("default")] == ["other"]
    assert inv.pods("absent") == []


@pytest.mark.parametrize(("owner_kind", "owner_name", "labels", "workload"), [
    ("ReplicaSet", "vllm-7d9c6", {"pod-template-hash": "7d9c6"}, ("Deployment", "vllm")),
    ("ReplicaSet", "bare-rs", {}, ("ReplicaSet", "bare-rs")),
    ("ReplicaSet", "x-abc", {"pod-template-hash": "zzz"}, ("ReplicaSet", "x-abc")),
    ("StatefulSet", "db", {}, ("StatefulSet", "db")),
    ("", "", {}, ("", "")),
])
def test_workload_of_a_pod(owner_kind: str, owner_name: str, labels: dict[str, str],
                           workload: tuple[str, str]) -> None:
    assert PodInfo("ns", "p", labels, owner_kind, owner_name).workload == workload


def test_select_and_owned_by() -> None:
    pods = list(load_pod_file(PODS).pods("llm"))
    assert [p.name for p in select(pods, parse_selector("app=vllm-sts"))] == ["vllm-sts-0"]
    assert len(owned_by(pods, "Deployment", "vllm")) == 4
    assert [p.name for p in owned_by(pods, "StatefulSet", "vllm-sts")] == ["vllm-sts-0"]


@pytest.mark.parametrize(("text", "count"), [
    ('{"kind": "PodList", "items": [{"metadata": {"name": "a", "namespace": "x"}}]}', 1),
    ("kind: Pod\nmetadata: {name: a}\n", 1),
    ("kind: List\nitems: []\n", 0),
    ("kind: List\nitems:\n- {kind: Service, metadata: {name: s}}\n- {kind: Pod, metadata: {name: p}}\n", 1),
])
def test_parse_pod_list_shapes(text: str, count: int) -> None:
    assert len(parse_pod_list(text)) == count


@pytest.mark.parametrize(("text", "needle"), [
    ("[1, 2]", "PodList"), ("kind: Deployment\n", "items"), (": :\n- [", "YAML"),
    ("kind: List\nitems:\n- {metadata: {}}\n", "metadata.name"),
])
def test_parse_pod_list_errors(text: str, needle: str) -> None:
    with pytest.raises(InventoryError, match=needle):
        parse_pod_list(text)


def test_missing_file_is_an_inventory_error(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="cannot read"):
        load_pod_file(tmp_path / "none.yaml")
