"""Runbook links: added by one function, each pointing at a section of docs/runbooks.md."""

from __future__ import annotations

import re

import pytest

from alerts.model import Alert, Group
from alerts.recording import recording_groups
from alerts.render import all_alerts, build_groups
from alerts.runbooks import add_runbook_urls, anchor, heading_anchors, runbook_url
from exporter.contract.policy import Policy, from_mapping
from tests.conftest import REPO

RUNBOOKS = REPO / "docs" / "runbooks.md"
ALERTS = all_alerts(build_groups(Policy()))


@pytest.mark.parametrize(("markdown", "expected"), [
    ("# Title\n## KvscaleGPULost\n", {"title", "kvscalegpulost"}),
    ("## Two Words, punctuated!\n", {"two-words-punctuated"}),
    ("```\n# not a heading\n```\n### Real\n", {"real"}),
    ("text # not a heading\n", set()),
])
def test_heading_anchors(markdown: str, expected: set[str]) -> None:
    assert heading_anchors(markdown) == expected


def test_every_alert_links_to_its_own_section() -> None:
    anchors = heading_anchors(RUNBOOKS.read_text(encoding="utf-8"))
    for alert in ALERTS:
        url = alert.annotation("runbook_url")
        assert url == f"docs/runbooks.md#{alert.alert.lower()}"  # the default base: the project's docs path
        assert anchor(alert.alert) in anchors, f"docs/runbooks.md lacks a section for {alert.alert}"


def test_runbook_sections_say_meaning_confirm_and_act() -> None:
    text = RUNBOOKS.read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## (\w+)\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S))
    assert set(sections) == {a.alert for a in ALERTS}, "a section per alert, and no section for a removed one"
    for name, body in sections.items():
        for part in ("**Meaning.**", "**Confirm.**", "**Act.**"):
            assert part in body, f"{name}: missing {part}"


def test_internal_links_in_the_runbooks_resolve() -> None:
    text = RUNBOOKS.read_text(encoding="utf-8")
    anchors = heading_anchors(text)
    links = re.findall(r"\]\(#([^)]+)\)", text)
    assert links and all(link in anchors for link in links)


def test_runbook_base_is_a_setting() -> None:
    config = from_mapping({"runbook_url_base": "https://wiki.example.com/kvscale"})
    urls = {a.annotation("runbook_url") for a in all_alerts(build_groups(config))}
    assert urls == {f"https://wiki.example.com/kvscale#{a.alert.lower()}" for a in ALERTS}


def test_add_runbook_urls_keeps_an_explicit_link_and_skips_recordings() -> None:
    own = Alert("Own", "up == 0", 60, "warning", "s", "{{ $labels.job }}", "up",
                (("runbook_url", "https://elsewhere/own"),))
    plain = Alert("Plain", "up == 0", 60, "warning", "s", "{{ $labels.job }}", "up")
    (group,) = add_runbook_urls((Group("g", (own, plain)),), "https://base")
    linked = {r.alert: r.annotation("runbook_url") for r in group.alerts()}
    assert linked == {"Own": "https://elsewhere/own", "Plain": runbook_url("https://base", "Plain")}


def test_no_generator_writes_a_runbook_url_by_hand() -> None:
    for module in ("alerting.py", "platform.py", "recording.py"):
        assert "runbook_url" not in (REPO / "alerts" / module).read_text(encoding="utf-8")


def test_recording_rules_named_in_the_runbooks_exist() -> None:
    text = RUNBOOKS.read_text(encoding="utf-8")
    named = set(re.findall(r"\b[a-z_]+:[a-z_]+:[a-z0-9_]+\b", text))
    built = {r.record for g in recording_groups(Policy()) for r in g.recordings()}
    assert named and named <= built, sorted(named - built)
