"""What the rule generators read: the one policy from --policy (or its older spellings), then --set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alerts.config import DEPRECATED_ENV, load_config, parse_assignments
from exporter.contract.policy import ENV_NAME, Policy, PolicyError


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
    with pytest.raises(PolicyError, match="name=value"):
        parse_assignments([bad])


def test_no_file_no_set_is_the_default_policy() -> None:
    assert load_config(None, [], environ={}) == Policy()


def test_policy_file_then_set(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("kv_cache_usage_alert: 0.9\nqueue_target: 8\nabsent_for_seconds: 600.0\n")
    policy = load_config(path, ["queue_target=10", 'exporter_selector=job="exp", cluster="a"'], environ={})
    assert (policy.kv_cache_usage_alert, policy.queue_target, policy.absent_for_seconds) == (0.9, 10.0, 600)
    assert isinstance(policy.absent_for_seconds, int)
    assert policy.exporter_selector == 'job="exp", cluster="a"'


def test_environment_and_deprecated_spellings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new, old = tmp_path / "new.yaml", tmp_path / "old.yaml"
    new.write_text("queue_target: 7\n")
    old.write_text("queue_target: 3\n")
    assert load_config(None, [], environ={ENV_NAME: str(new), DEPRECATED_ENV: str(old)}).queue_target == 7
    assert capsys.readouterr().err == ""
    assert load_config(None, [], environ={DEPRECATED_ENV: str(old)}).queue_target == 3
    assert f"{DEPRECATED_ENV} is deprecated" in capsys.readouterr().err
    assert load_config(None, [], deprecated=old, environ={ENV_NAME: str(new)}).queue_target == 3
    assert "--thresholds is deprecated" in capsys.readouterr().err
    assert load_config(new, [], deprecated=old, environ={}).queue_target == 7


@pytest.mark.parametrize(("data", "message"), [
    (["kv_cache_usage_alrt=0.9"], "--set: unknown key 'kv_cache_usage_alrt' (did you mean 'kv_cache_usage_alert'?)"),
    (["kv_cache_usage_alert=1.5"], "--set: kv_cache_usage_alert: must be <= 1, got 1.5"),
    (["target_down_for_seconds=0"], "target_down_for_seconds: must be >= 1"),
    (["target_down_for_seconds=1.5"], "target_down_for_seconds: expected a whole number"),
    (["admission_rejections_per_second_alert=-1"], "must be >= 0"),
    (["xid_window_seconds=10m"], "expected a finite number"),
    (["gpu_lost_for_seconds=true"], "expected a finite number"),
    (["exporter_selector=3"], "exporter_selector: expected a string"),
    (["exporter_selector="], "exporter_selector: must not be empty"),
])
def test_bad_set_values_name_the_key(data: list[str], message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        load_config(None, data, environ={})
    assert message in str(caught.value)


@pytest.mark.parametrize(("text", "message"), [("- a\n- b\n", "top level must be a mapping"),
                                               ("a: [\n", "cannot read")])
def test_load_config_bad_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=message):
        load_config(path, [], environ={})


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=f"policy file {tmp_path / 'nope.yaml'}: cannot read"):
        load_config(tmp_path / "nope.yaml", [], environ={})
