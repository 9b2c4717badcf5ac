"""``kvscale-alerts build``: files written, settings applied, bad input a clear error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from alerts.cli import main
from tests.conftest import REPO


def _alert(directory: Path, name: str) -> dict[str, object]:
    for path in directory.glob("*.rules.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == name:
                    return dict(rule)
    raise AssertionError(f"{name} not built")


def test_build_writes_rule_files_and_object(tmp_path: Path) -> None:
    assert main(["build", str(tmp_path / "out")]) == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "prometheusrule.yaml" in names
    assert sorted(names) == sorted(p.name for p in (REPO / "alerts" / "rules").iterdir())


def test_policy_file_and_set_flags_change_the_rules(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("kv_cache_usage_alert: 0.9\nkv_fragmentation_alert: 0.3\n")
    out = tmp_path / "out"
    assert main(["build", str(out), "--policy", str(policy), "--set", "kv_fragmentation_alert=0.25",
                 "--set", 'exporter_selector=job="node-exp"']) == 0
    kv = _alert(out, "KvscaleKVCacheNearlyFull")
    assert kv["expr"] == 'kvscale_vllm_kv_cache_usage_ratio{job="node-exp"} > 0.9'
    assert str(_alert(out, "KvscaleKVFragmentationHigh")["expr"]).endswith("> 0.25")
    assert _alert(out, "KvscaleExporterAbsent")["expr"] == 'absent(up{job="node-exp"} == 1)'


@pytest.mark.parametrize(("flag", "env"), [("--policy", ""), ("--thresholds", ""), ("", "KVSCALE_POLICY"),
                                           ("", "KVSCALE_ALERTS_THRESHOLDS")])
def test_policy_file_by_flag_environment_and_deprecated_spellings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], flag: str,
        env: str) -> None:
    policy = tmp_path / "t.yaml"
    policy.write_text("ttft_p95_slo_seconds: 2\n")
    monkeypatch.delenv("KVSCALE_POLICY", raising=False)
    if env:
        monkeypatch.setenv(env, str(policy))
    assert main(["build", str(tmp_path / "out"), *([flag, str(policy)] if flag else [])]) == 0
    assert "> 2\nunless on" in str(_alert(tmp_path / "out", "KvscaleTTFTOverSLO")["expr"])
    assert ("deprecated" in capsys.readouterr().err) == ("THRESHOLDS" in env or flag == "--thresholds")


def test_hpa_namespace_selector_narrows_the_hpa_alerts(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["build", str(out), "--set", 'hpa_namespace_selector=namespace=~"llm-.*"']) == 0
    expr = str(_alert(out, "KvscaleHPAMaxedOutSaturated")["expr"])
    assert 'kube_horizontalpodautoscaler_spec_max_replicas{job="kube-state-metrics", namespace=~"llm-.*"}' in expr


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "kv_cache_usage_alert=2"], "--set: kv_cache_usage_alert: must be <= 1, got 2"),
    (["--set", "nope=1"], "--set: unknown key 'nope'"),
    (["--set", "exporter_selector="], "--set: exporter_selector: must not be empty")])
def test_bad_settings_exit_2_and_write_nothing(tmp_path: Path, args: list[str], message: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["build", str(out), *args]) == 2
    assert not out.exists()
    assert f"kvscale-alerts: error: {message}" in capsys.readouterr().err


def test_unwritable_directory_exits_1(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["build", str(blocker)]) == 1


def test_python_dash_m_and_help() -> None:
    result = subprocess.run([sys.executable, "-m", "alerts", "build", "--help"], capture_output=True, text=True,
                            cwd=REPO, timeout=60, check=False)
    assert result.returncode == 0
    assert "kv_cache_usage_alert = 0.85 (ratio)" in result.stdout
    assert "exporter_selector" in result.stdout
