"""The build against Debian's promtool: rules check, and unit tests of every alert both ways."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.model import Group
from alerts.promql import duration
from alerts.render import all_alerts, build_groups, render_files, write_files
from exporter.contract.policy import Policy, from_mapping
from tests.alerts.promtool_cases import CASES, Case, to_promtool

CASE_BY_ALERT = {case.alert: case for case in CASES}


def _write_build(directory: Path, config: Policy) -> tuple[tuple[Group, ...], list[Path]]:
    groups = build_groups(config)
    paths = [p for p in write_files(render_files(groups), directory) if p.name.endswith(".rules.yml")]
    # Evaluate groups in build order: alerts read recordings of the same evaluation step.
    order = [g.name for g in groups]
    paths.sort(key=lambda p: order.index(p.name.removesuffix(".rules.yml")))
    return groups, paths


def _run_promtool(promtool: str, directory: Path, groups: tuple[Group, ...], rule_files: list[Path],
                  tests: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    test_file = directory / "alerts.test.yml"
    test_file.write_text(yaml.safe_dump({
        "rule_files": [str(p) for p in rule_files],
        "evaluation_interval": "1m",
        "group_eval_order": [g.name for g in groups],
        "tests": tests,
    }, sort_keys=False))
    return subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True,
                          timeout=120, check=False)


def _static_annotations(groups: tuple[Group, ...]) -> dict[str, dict[str, str]]:
    return {a.alert: {"summary": a.summary, **dict(a.annotations)} for a in all_alerts(groups)}


def _tests_for(groups: tuple[Group, ...], cases: tuple[Case, ...]) -> list[dict[str, Any]]:
    severities = {a.alert: a.severity for a in all_alerts(groups)}
    annotations = _static_annotations(groups)
    return [t for case in cases for t in to_promtool(case, severity=severities[case.alert], annotations=annotations)]


def test_promtool_check_rules_passes(promtool: str, tmp_path: Path) -> None:
    _, paths = _write_build(tmp_path, Policy())
    result = subprocess.run([promtool, "check", "rules", *map(str, paths)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(paths)


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    built = {a.alert: a for a in all_alerts(build_groups(Policy()))}
    assert set(CASE_BY_ALERT) == set(built), "add a case in tests/alerts/promtool_cases.py for each new alert"
    for name, alert in built.items():
        case = CASE_BY_ALERT[name]
        assert case.firing, f"{name}: no firing expectation"
        assert case.below, f"{name}: no scenario just below the line"
        assert duration(alert.for_seconds) == duration(case.for_minutes * 60), f"{name}: `for` changed"


def test_promtool_unit_tests_cover_every_alert(promtool: str, tmp_path: Path) -> None:
    groups, paths = _write_build(tmp_path, Policy())
    result = _run_promtool(promtool, tmp_path, groups, paths, _tests_for(groups, CASES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(("value", "fires_at_086"), [(0.9, False), (0.8, True)])
def test_changing_the_kv_threshold_changes_the_alert(promtool: str, tmp_path: Path, value: float,
                                                     fires_at_086: bool) -> None:
    config = from_mapping({"kv_cache_usage_alert": value})
    groups, paths = _write_build(tmp_path, config)
    kv = next(a for a in all_alerts(groups) if a.alert == "KvscaleKVCacheNearlyFull")
    assert kv.expr.endswith(f"> {value}")
    case = CASE_BY_ALERT["KvscaleKVCacheNearlyFull"]
    firing = tuple(
        type(f)(f.labels, f"The KV cache of demo/vllm-a (tiny-llama) is 86% full, above {value * 100:g}% for 5m. "
                          "New requests wait for blocks and running ones get preempted.")
        for f in case.firing)
    changed = Case(case.alert, case.for_minutes, case.above, firing if fires_at_086 else (), ())
    tests = to_promtool(changed, severity=kv.severity, annotations=_static_annotations(groups))
    result = _run_promtool(promtool, tmp_path, groups, paths, tests)
    assert result.returncode == 0, result.stdout + result.stderr


def test_for_durations_follow_the_thresholds(tmp_path: Path) -> None:
    config = from_mapping({"kv_cache_usage_alert_for_seconds": 120, "ttft_p95_slo_seconds": 1.5,
                                  "target_down_for_seconds": 900})
    built = {a.alert: a for a in all_alerts(build_groups(config))}
    assert built["KvscaleKVCacheNearlyFull"].to_dict()["for"] == "2m"
    assert "> 1.5\nunless on" in built["KvscaleTTFTOverSLO"].expr
    assert "1.5s SLO" in built["KvscaleTTFTOverSLO"].description
    assert built["KvscaleVLLMTargetDown"].to_dict()["for"] == "15m"
