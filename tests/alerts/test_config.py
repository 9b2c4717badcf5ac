"""Settings: one mapping split between the shared Thresholds and the alerts-only settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alerts.config import AlertsConfig, AlertSettings, config_from_mapping, load_config, parse_assignments
from exporter.contract.policy import Thresholds, ThresholdsError


def test_defaults_are_the_shared_thresholds() -> None:
    config = config_from_mapping({})
    assert config == AlertsConfig()
    assert config.thresholds == Thresholds()
    assert config.settings.exporter_selector == 'job="kvscale-exporter"'
    assert config.settings.adapter_selector == 'job="kvscale-adapter"'


def test_one_mapping_feeds_both_objects() -> None:
    config = config_from_mapping({"kv_cache_usage_alert": 0.9, "target_down_for_seconds": 900.0,
                                  "exporter_selector": 'job="exp", cluster="a"'})
    assert config.thresholds.kv_cache_usage_alert == 0.9
    assert config.settings.target_down_for_seconds == 900
    assert isinstance(config.settings.target_down_for_seconds, int)
    assert config.settings.exporter_selector == 'job="exp", cluster="a"'


@pytest.mark.parametrize(("data", "message"), [
    ({"kv_cache_usage_alrt": 0.9}, "unknown settings: kv_cache_usage_alrt"),
    ({"kv_cache_usage_alert": 1.5}, "a ratio must be in"),
    ({"target_down_for_seconds": 0}, "positive whole number of seconds"),
    ({"target_down_for_seconds": 1.5}, "positive whole number of seconds"),
    ({"admission_rejections_per_second_alert": -1}, "rate >= 0"),
    ({"xid_window_seconds": "10m"}, "expected a finite number"),
    ({"gpu_lost_for_seconds": True}, "expected a finite number"),
    ({"exporter_selector": 3}, "expected a string"),
])
def test_bad_values_name_the_field(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ThresholdsError, match=message):
        config_from_mapping(data)


@pytest.mark.parametrize(("items", "expected"), [
    (["kv_cache_usage_alert=0.9"], {"kv_cache_usage_alert": 0.9}),
    (["target_down_for_seconds=900"], {"target_down_for_seconds": 900}),
    (['exporter_selector=job="x"'], {"exporter_selector": 'job="x"'}),
    (["vllm_selector="], {"vllm_selector": ""}),
    (["a=1", "a=2"], {"a": 2}),
])
def test_parse_assignments(items: list[str], expected: dict[str, Any]) -> None:
    assert parse_assignments(items) == expected


@pytest.mark.parametrize("bad", ["kv_cache_usage_alert", "=0.9"])
def test_parse_assignments_rejects_malformed(bad: str) -> None:
    with pytest.raises(ThresholdsError, match="name=value"):
        parse_assignments([bad])


def test_load_config_file_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "thresholds.yaml"
    path.write_text("kv_cache_usage_alert: 0.9\nqueue_target: 8\nabsent_for_seconds: 600\n")
    config = load_config(path, ["queue_target=10"])
    assert config.thresholds.kv_cache_usage_alert == 0.9
    assert config.thresholds.queue_target == 10
    assert config.settings.absent_for_seconds == 600


@pytest.mark.parametrize(("text", "message"), [("- a\n- b\n", "top level must be a mapping"),
                                               ("a: [\n", "cannot read settings file")])
def test_load_config_bad_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(ThresholdsError, match=message):
        load_config(path, [])


def test_missing_file_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(ThresholdsError, match="cannot read settings file"):
        load_config(tmp_path / "nope.yaml", [])


def test_every_setting_documents_unit_and_reason() -> None:
    for field in AlertSettings.__dataclass_fields__.values():
        assert field.metadata["unit"] and len(field.metadata["doc"]) > 20, field.name
