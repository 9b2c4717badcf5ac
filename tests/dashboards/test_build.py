"""The built dashboards: committed build in sync, valid current-schema JSON, sane grid, threshold lines."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.dashboard_links import PANELS
from alerts.render import all_alerts, build_groups
from alerts.runbooks import heading_anchors
from dashboards import build
from dashboards.build import all_panels
from exporter.contract.policy import Policy, from_mapping
from tests.conftest import REPO


def test_build_is_deterministic() -> None:
    assert build.files(Policy()) == build.files(Policy())


def test_write_then_drift_detects_an_edit(tmp_path: Path) -> None:
    written = build.write(tmp_path, Policy())
    assert sorted(p.name for p in written) == sorted(f"{stem}.json" for stem in build.DASHBOARDS)
    assert build.drift(tmp_path, Policy()) == []
    (tmp_path / "gpu.json").write_text("{}")
    (tmp_path / "stray.json").write_text("{}")
    assert build.drift(tmp_path, Policy()) == ["gpu.json", "stray.json"]


@pytest.mark.parametrize("stem", list(build.DASHBOARDS))
def test_committed_json_loads_with_the_current_schema(stem: str) -> None:
    dash = json.loads((build.DEFAULT_DIR / f"{stem}.json").read_text(encoding="utf-8"))
    assert dash["schemaVersion"] == 41
    assert dash["uid"] == f"kvscale-{stem}"
    assert "kvscale" in dash["tags"]
    names = [v["name"] for v in dash["templating"]["list"]]
    assert names[:5] == ["datasource", "cluster", "namespace", "model", "pod"]


def test_uids_are_unique(default_build: dict[str, dict[str, Any]]) -> None:
    uids = [dash["uid"] for dash in default_build.values()]
    assert len(set(uids)) == len(uids)


def _overlap(a: dict[str, int], b: dict[str, int]) -> bool:
    across = a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
    return across and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]


@pytest.mark.parametrize("stem", list(build.DASHBOARDS))
def test_panel_ids_unique_and_grid_without_overlap(default_build: dict[str, dict[str, Any]], stem: str) -> None:
    panels = list(all_panels(default_build[stem]))
    ids = [p["id"] for p in panels]
    assert ids == list(range(1, len(panels) + 1))
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
    for i, a in enumerate(panels):
        for b in panels[i + 1:]:
            assert not _overlap(a["gridPos"], b["gridPos"]), (a["title"], b["title"])


@pytest.mark.parametrize("stem", list(build.DASHBOARDS))
def test_every_panel_is_described_and_uses_the_datasource_variable(
        default_build: dict[str, dict[str, Any]], stem: str) -> None:
    for panel in all_panels(default_build[stem]):
        if panel["type"] == "row":
            continue
        assert len(panel.get("description", "")) > 20, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"


def test_runbook_links_are_the_alerts_runbook_urls(default_build: dict[str, dict[str, Any]]) -> None:
    links = {link["url"] for dash in default_build.values() for p in all_panels(dash) for link in p.get("links", [])}
    assert len(links) > 10
    docs = [yaml.safe_load(p.read_text()) for p in sorted((REPO / "alerts" / "rules").glob("*.rules.yml"))]
    alert_urls = {rule["annotations"]["runbook_url"] for doc in docs for group in doc["groups"]
                  for rule in group["rules"] if "alert" in rule}
    assert links <= alert_urls, sorted(links - alert_urls)
    headings = heading_anchors((REPO / "docs" / "runbooks.md").read_text())
    assert {url.split("#", 1)[1] for url in links} <= headings


def _steps(dashes: dict[str, dict[str, Any]]) -> list[float]:
    return [step["value"] for dash in dashes.values() for panel in all_panels(dash)
            for step in panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", [])
            if step["value"] is not None]


LINE_FIELDS = ["kv_cache_usage_alert", "kv_fragmentation_alert", "ttft_p95_slo_seconds", "queue_target",
               "kv_target", "preemptions_per_second_alert", "gpu_memory_usage_alert", "gpu_utilization_target"]


@pytest.mark.parametrize("name", LINE_FIELDS)
def test_changing_a_threshold_moves_its_lines(default_build: dict[str, dict[str, Any]], name: str) -> None:
    default = getattr(Policy(), name)
    moved = 0.613 if default <= 1 else 7.25  # a value no other threshold or constant line uses
    changed = build.render(from_mapping({name: moved}))
    before, after = _steps(default_build), _steps(changed)
    assert moved not in before
    assert after.count(moved) >= 1
    assert before.count(default) - after.count(default) == after.count(moved)


def test_thresholds_reach_descriptions_too() -> None:
    text = build.files(dataclasses.replace(Policy(), scale_down_stabilization_seconds=420))["autoscaling.json"]
    assert "[420s]" in text and "[300s]" not in text


def test_fleet_per_pod_panels_drill_down_to_the_engine_dashboard(default_build: dict[str, dict[str, Any]]) -> None:
    engine_uid = default_build["engine"]["uid"]
    drilldowns = [link["url"] for p in all_panels(default_build["fleet"])
                  for link in p.get("fieldConfig", {}).get("defaults", {}).get("links", [])]
    assert len(drilldowns) == 3
    assert all(url.startswith(f"/d/{engine_uid}?") and "var-pod=${__field.labels.pod}" in url for url in drilldowns)


def test_every_dashboard_is_documented(default_build: dict[str, dict[str, Any]]) -> None:
    doc = (REPO / "docs" / "dashboards.md").read_text()
    for dash in default_build.values():
        assert dash["title"] in doc


def test_every_alerts_dashboard_url_opens_a_panel_that_shows_it(default_build: dict[str, dict[str, Any]]) -> None:
    by_uid = {dash["uid"]: {p["id"]: p for p in all_panels(dash)} for dash in default_build.values()}
    alerts = all_alerts(build_groups(Policy()))
    assert {a.alert for a in alerts} == set(PANELS)
    for alert in alerts:
        uid, panel_id = PANELS[alert.alert]
        assert alert.annotation("dashboard_url") == f"http://localhost:3000/d/{uid}?viewPanel={panel_id}"
        panel = by_uid[uid][panel_id]
        links = {link["url"].rsplit("#", 1)[-1] for link in panel.get("links", [])}
        assert alert.alert.lower() in links, f"{alert.alert}: panel {uid}/{panel_id} ({panel['title']})"


def test_dashboard_urls_follow_the_grafana_base() -> None:
    alerts = all_alerts(build_groups(from_mapping({"grafana_url_base": "https://grafana.example.com/"})))
    assert {a.annotation("dashboard_url").split("/d/")[0] for a in alerts} == {"https://grafana.example.com"}  # type: ignore[union-attr]


def test_the_cluster_label_is_a_policy_field(default_build: dict[str, dict[str, Any]]) -> None:
    text = build.files(from_mapping({"cluster_label": "k8s_cluster"}))["fleet.json"]
    assert 'k8s_cluster=~\\"$cluster\\"' in text and "by (k8s_cluster, namespace" in text
    assert "kvscale_cluster_label" not in text and 'cluster=~' not in text.replace("k8s_cluster=~", "")
    default = build.files(Policy())["gpu.json"]
    # Every by () and on () of every panel starts with the cluster label.
    queries = [t["expr"] for dash in default_build.values() for p in all_panels(dash) for t in p.get("targets", [])]
    clauses = [c for q in queries for c in re.findall(r"\b(?:by|on) \(([^)]*)\)", q)]
    assert clauses and [c for c in clauses if c and not c.startswith("cluster")] == []
    assert "kvscale_cluster_label" not in default
