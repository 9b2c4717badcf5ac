"""The one definition of thresholds: defaults, validation, loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.contract.policy import Thresholds, ThresholdsError, describe, from_mapping, load


def test_defaults_are_design_md_values() -> None:
    t = Thresholds()
    assert (t.kv_cache_usage_alert, t.kv_fragmentation_alert, t.ttft_p95_slo_seconds) == (0.85, 0.20, 0.8)
    assert (t.queue_target, t.kv_target, t.gpu_utilization_target) == (5, 0.75, 0.75)
    assert (t.kv_cache_usage_alert_for_seconds, t.kv_fragmentation_alert_for_seconds) == (300, 600)
    assert t.scale_down_stabilization_seconds == 300


@pytest.mark.parametrize(("data", "message"), [
    ({"kv_target": 0}, "must be > 0"),
    ({"kv_target": 1.2}, "a ratio must be in"),
    ({"queue_target": "5"}, "expected a finite number"),
    ({"queue_target": float("nan")}, "expected a finite number"),
    ({"queue_target": True}, "expected a finite number"),
    ({"nope": 1}, "unknown thresholds: nope"),
])
def test_invalid_thresholds_name_the_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(ThresholdsError, match=message):
        from_mapping(data)


def test_load_yaml_and_integral_floats(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("queue_target: 8\nttft_alert_for_seconds: 120.0\n")
    t = load(path)
    assert t.queue_target == 8 and t.ttft_alert_for_seconds == 120
    assert isinstance(t.ttft_alert_for_seconds, int)
    path.write_text("- 1\n")
    with pytest.raises(ThresholdsError, match="mapping"):
        load(path)
    with pytest.raises(ThresholdsError, match="cannot read"):
        load(tmp_path / "missing.yaml")


def test_every_threshold_is_documented_with_a_unit() -> None:
    rows = describe()
    assert {r[0] for r in rows} == set(Thresholds().to_dict())
    assert all(unit and doc for _, unit, _, doc in rows)
