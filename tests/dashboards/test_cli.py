"""``kvscale-dashboards``: build, drift check, policy file, preview errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dashboards.cli import main
from tests.conftest import free_port


def test_build_writes_every_dashboard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", str(tmp_path / "out")]) == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["autoscaling.json", "engine.json", "fleet.json", "gpu.json"]
    assert str(tmp_path / "out" / "fleet.json") in capsys.readouterr().out


def test_policy_file_changes_the_lines_and_check_catches_drift(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("kv_cache_usage_alert: 0.91\n")
    assert main(["build", str(tmp_path / "custom"), "--policy", str(policy)]) == 0
    fleet = json.loads((tmp_path / "custom" / "fleet.json").read_text())
    kv = next(p for p in fleet["panels"] if p["title"] == "KV cache usage per pod")
    assert [s["value"] for s in kv["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [None, 0.75, 0.91]
    assert main(["build", str(tmp_path / "custom"), "--check", "--policy", str(policy)]) == 0
    assert main(["build", str(tmp_path / "custom"), "--check"]) == 1


@pytest.mark.parametrize(("flag", "env"), [("--policy", ""), ("--thresholds", ""), ("", "KVSCALE_POLICY"),
                                           ("", "KVSCALE_THRESHOLDS_FILE")])
def test_policy_by_flag_environment_and_deprecated_spellings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], flag: str,
        env: str) -> None:
    policy = tmp_path / "t.yaml"
    policy.write_text("queue_target: 9\n")
    monkeypatch.delenv("KVSCALE_POLICY", raising=False)
    if env:
        monkeypatch.setenv(env, str(policy))
    assert main(["build", str(tmp_path / "out"), *([flag, str(policy)] if flag else [])]) == 0
    assert '"value": 9' in (tmp_path / "out" / "fleet.json").read_text()
    assert ("deprecated" in capsys.readouterr().err) == ("THRESHOLDS" in env or flag == "--thresholds")


def test_selectors_and_runbook_base_come_from_the_policy(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text('policy:\n  kube_state_metrics_selector: job="ksm", cluster="a"\n'
                      "  runbook_url_base: https://wiki.example.com/kvscale\n")
    assert main(["build", str(tmp_path / "out"), "--policy", str(policy)]) == 0
    text = (tmp_path / "out" / "autoscaling.json").read_text()
    assert 'kube_horizontalpodautoscaler_spec_max_replicas{job=\\"ksm\\", cluster=\\"a\\", cluster=~' in text
    assert 'job=\\"kube-state-metrics\\"' not in text
    assert "https://wiki.example.com/kvscale#kvscalehpametricsunavailable" in text
    assert "docs/runbooks.md" not in text and "kvscale:runbooks" not in text


@pytest.mark.parametrize(("content", "message"), [
    ("kv_cache_usage_alert: 1.5\n", "kv_cache_usage_alert: must be <= 1, got 1.5"),
    ("no_such_threshold: 1\n", "unknown key 'no_such_threshold'"),
])
def test_bad_policy_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          content: str, message: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)
    assert main(["build", str(tmp_path / "out"), "--policy", str(bad)]) == 2
    assert f"kvscale-dashboards: error: policy file {bad}: {message}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_preview_without_prometheus_fails_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["preview", "--prometheus-url", url, "--out", str(tmp_path)]) == 2
    assert "cannot query" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
