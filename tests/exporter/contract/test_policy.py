"""The one policy: defaults, validation, loading, and the JSON Schema generated from it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from exporter.contract.policy import (
    ENV_NAME,
    Policy,
    PolicyError,
    describe,
    from_flag_or_env,
    from_mapping,
    json_schema,
    load,
    placeholders,
)


def test_defaults_are_design_md_values() -> None:
    p = Policy()
    assert (p.kv_cache_usage_alert, p.kv_fragmentation_alert, p.ttft_p95_slo_seconds) == (0.85, 0.20, 0.8)
    assert (p.queue_target, p.kv_target, p.gpu_utilization_target) == (5, 0.75, 0.75)
    assert (p.kv_cache_usage_alert_for_seconds, p.kv_fragmentation_alert_for_seconds) == (300, 600)
    assert p.scale_down_stabilization_seconds == 300
    assert p.adapter_default_quantile == 0.95
    assert p.kube_state_metrics_selector == 'job="kube-state-metrics"' and p.hpa_namespace_selector == ""
    assert p.runbook_url_base == "docs/runbooks.md"


@pytest.mark.parametrize(("data", "message"), [
    ({"kv_target": 0}, "policy: kv_target: must be > 0, got 0"),
    ({"kv_target": 1.2}, "policy: kv_target: must be <= 1, got 1.2"),
    ({"adapter_default_quantile": 1.0}, "adapter_default_quantile: must be < 1"),
    ({"admission_rejections_per_second_alert": -0.5}, "must be >= 0, got -0.5"),
    ({"queue_target": "5"}, "queue_target: expected a finite number, got '5'"),
    ({"queue_target": float("nan")}, "expected a finite number"),
    ({"queue_target": True}, "expected a finite number"),
    ({"ttft_alert_for_seconds": 0}, "ttft_alert_for_seconds: must be >= 1"),
    ({"ttft_alert_for_seconds": 1.5}, "expected a whole number, got 1.5"),
    ({"exporter_selector": 3}, "exporter_selector: expected a string"),
    ({"exporter_selector": 'job="a"}'}, "no braces"),
    ({"runbook_url_base": ""}, "runbook_url_base: must not be empty"),
    ({"latency_slo_severity": "pager"}, "latency_slo_severity: must be one of critical, warning, info, got 'pager'"),
    ({"cluster_label": "k8s-cluster"}, "cluster_label: must match"),
    ({"kv_targt": 0.5}, "unknown key 'kv_targt' (did you mean 'kv_target'?)"),
    ({"zz": 1, "yy": 2}, "unknown keys 'yy', 'zz'"),
])
def test_invalid_values_name_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        from_mapping(data)
    assert message in str(caught.value)


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(PolicyError, match="kv_target: must be <= 1"):
        Policy(kv_target=2.0)


def test_load_flat_nested_and_integral_floats(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("queue_target: 8\nttft_alert_for_seconds: 120.0\n")
    p = load(path)
    assert p.queue_target == 8.0 and isinstance(p.queue_target, float)
    assert p.ttft_alert_for_seconds == 120 and isinstance(p.ttft_alert_for_seconds, int)
    path.write_text("policy:\n  kv_target: 0.6\n")
    assert load(path).kv_target == 0.6
    path.write_text("")
    assert load(path) == Policy()
    path.write_text("- 1\n")
    with pytest.raises(PolicyError, match=f"policy file {path}: the top level must be a mapping"):
        load(path)
    with pytest.raises(PolicyError, match="cannot read"):
        load(tmp_path / "missing.yaml")
    path.write_text("policy:\n  kv_target: 0.6\nother: 1\n")  # 'policy:' nests only when it is the only key
    with pytest.raises(PolicyError, match="unknown keys 'other', 'policy'"):
        load(path)


def test_flag_wins_over_env_and_env_names_the_file(tmp_path: Path) -> None:
    flag, env = tmp_path / "flag.yaml", tmp_path / "env.yaml"
    flag.write_text("queue_target: 7\n")
    env.write_text("queue_target: 9\nkv_target: 3\n")
    assert from_flag_or_env(str(flag), {ENV_NAME: str(env)}).queue_target == 7
    with pytest.raises(PolicyError, match=f"policy file {env} \\(from {ENV_NAME}\\): kv_target"):
        from_flag_or_env(None, {ENV_NAME: str(env)})
    assert from_flag_or_env(None, {}) == Policy()


def test_replace_checks_keys_and_values() -> None:
    p = Policy().replace({"queue_target": 3}, "--set")
    assert p.queue_target == 3.0 and p.kv_target == Policy().kv_target
    with pytest.raises(PolicyError, match="--set: unknown key 'nope'"):
        Policy().replace({"nope": 1}, "--set")


def test_every_field_is_documented_with_a_unit() -> None:
    rows = describe()
    assert [r[0] for r in rows] == list(Policy().to_dict())
    assert all(unit and doc for _, unit, _, doc in rows)


def test_schema_accepts_defaults_and_every_field_is_typed() -> None:
    schema = json_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(Policy().to_dict(), schema)
    jsonschema.validate({}, schema)
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {f.name for f in dataclasses.fields(Policy)}
    for name, prop in schema["properties"].items():
        assert prop["type"] in ("number", "integer", "string"), name
        assert "Unit: " in prop["description"], name
    assert schema["properties"]["kv_target"]["maximum"] == 1
    assert schema["properties"]["kv_target"]["exclusiveMinimum"] == 0


@pytest.mark.parametrize("bad", [
    {"kv_target": 1.5}, {"kv_target": 0}, {"queue_target": -1}, {"queue_target": "5"},
    {"ttft_alert_for_seconds": 1.5}, {"ttft_alert_for_seconds": 0}, {"adapter_default_quantile": 1},
    {"exporter_selector": 'job="x"}'}, {"runbook_url_base": ""}, {"no_such_key": 1},
    {"latency_slo_severity": "pager"}, {"cluster_label": "k8s-cluster"},
])
def test_schema_refuses_what_the_loader_refuses(bad: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json_schema())
    with pytest.raises(PolicyError):
        from_mapping(bad)


def test_placeholders_relax_only_enum_and_pattern() -> None:
    with placeholders():
        assert Policy(latency_slo_severity="kvs_sentinel").latency_slo_severity == "kvs_sentinel"
        with pytest.raises(PolicyError, match="must not be empty"):
            Policy(latency_slo_severity="")
        with pytest.raises(PolicyError, match="must be <= 1"):
            Policy(kv_target=2.0)
    with pytest.raises(PolicyError, match="must be one of"):
        Policy(latency_slo_severity="kvs_sentinel")
