"""The one regenerate command: the committed derived files are current, and --check names what is not."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from deploy.generate import OUTPUTS, SELF, Output, stale, write
from exporter.contract.policy import Policy
from tests.conftest import PYTHON, REPO


def test_committed_outputs_are_current() -> None:
    """The drift test: docs/metrics.md, alerts/rules/ and dashboards/json/ equal a fresh default build."""
    result = subprocess.run([PYTHON, "deploy/generate.py", "--check"], cwd=REPO, check=False, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_outputs_cover_docs_rules_and_dashboards() -> None:
    assert {o.path for o in OUTPUTS} >= {"docs/metrics.md", "alerts/rules", "dashboards/json"}


def test_check_names_changed_missing_and_leftover_files(tmp_path: Path) -> None:
    assert stale(Policy(), tmp_path) != []  # nothing written yet: every file is missing
    written = write(Policy(), tmp_path)
    assert {tmp_path / "docs" / "metrics.md", tmp_path / "dashboards" / "json" / "fleet.json"} <= set(written)
    assert stale(Policy(), tmp_path) == []
    assert write(Policy(), tmp_path) == []  # nothing to do the second time
    changed = tmp_path / "alerts" / "rules" / "kvscale-vllm-alerts.rules.yml"
    changed.write_text(changed.read_text() + "# hand edit\n")
    (tmp_path / "dashboards" / "json" / "gpu.json").unlink()
    leftover = tmp_path / "dashboards" / "json" / "renamed.json"
    leftover.write_text("{}")
    assert sorted(stale(Policy(), tmp_path)) == sorted([changed, tmp_path / "dashboards/json/gpu.json", leftover])
    write(Policy(), tmp_path)
    assert stale(Policy(), tmp_path) == [] and not leftover.exists()


def test_a_custom_policy_changes_the_build(tmp_path: Path) -> None:
    write(Policy(), tmp_path)
    custom = Policy(kv_cache_usage_alert=0.91)
    names = {p.relative_to(tmp_path).as_posix() for p in stale(custom, tmp_path)}
    assert "alerts/rules/kvscale-vllm-alerts.rules.yml" in names and "dashboards/json/fleet.json" in names
    assert "docs/metrics.md" not in names  # the reference documents the defaults


def test_one_row_adds_an_output(tmp_path: Path) -> None:
    """How the chart's files join: one more row in the table."""
    row = Output("deploy/extra/thresholds.yaml", lambda policy: {SELF: yaml.safe_dump({"kv": policy.kv_target})})
    assert stale(Policy(), tmp_path, (row,)) == [tmp_path / row.path]
    write(Policy(kv_target=0.5), tmp_path, (row,))
    assert yaml.safe_load((tmp_path / row.path).read_text()) == {"kv": 0.5}


def test_check_exits_nonzero_naming_the_stale_file(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("kv_fragmentation_alert: 0.33\n")
    result = subprocess.run([PYTHON, "deploy/generate.py", "--check", "--policy", str(policy)], cwd=REPO,
                            check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "alerts/rules/kvscale-vllm-alerts.rules.yml: stale" in result.stderr
    policy.write_text("kv_fragmentation_alert: 3\n")
    result = subprocess.run([PYTHON, "deploy/generate.py", "--check", "--policy", str(policy)], cwd=REPO,
                            check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "kv_fragmentation_alert: must be <= 1" in result.stderr
