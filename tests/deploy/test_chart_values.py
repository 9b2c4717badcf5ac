"""Bad values fail the install with the schema's message, which names the key; values.schema.json
embeds the policy's own generated schema."""

from __future__ import annotations

import json
from typing import Any

import helm_python as helm
import pytest

from exporter.contract.policy import json_schema
from tests.deploy.chart import CHART, render

BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    ({"policy": {"queue_target": -1}}, "at '/policy/queue_target': exclusiveMinimum: got -1, want 0"),
    ({"policy": {"kv_target": 1.5}}, "at '/policy/kv_target': maximum: got 1.5, want 1"),
    ({"policy": {"scale_down_stabilization_seconds": 0}}, "at '/policy/scale_down_stabilization_seconds': minimum"),
    ({"policy": {"queue_targett": 5}}, "at '/policy': additional properties 'queue_targett' not allowed"),
    ({"policy": {"kv_target": "high"}}, "at '/policy/kv_target': got string, want number"),
    ({"policy": {"ttft_alert_for_seconds": 1.5}}, "at '/policy/ttft_alert_for_seconds': got number, want integer"),
    ({"policy": {"vllm_selector": 'job="a"}'}}, "at '/policy/vllm_selector'"),
    ({"policy": {"exporter_selector": ""}}, "at '/policy/exporter_selector': minLength"),
    ({"adapter": {"replicas": "two"}}, "at '/adapter/replicas': got string, want integer"),
    ({"exporter": {"bogus": 1}}, "at '/exporter': additional properties 'bogus' not allowed"),
    ({"autoscaling": {"mode": "vpa"}}, "at '/autoscaling/mode'"),
    ({"autoscaling": {"scaleDown": {"tolerance": -0.1}}}, "at '/autoscaling/scaleDown/tolerance': minimum"),
]


@pytest.mark.parametrize(("values", "message"), BAD_VALUES, ids=[m.split("'")[1] for _, m in BAD_VALUES])
def test_bad_value_fails_with_the_schema_message(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        render(values)
    assert message in str(caught.value)


def test_lint_reports_a_bad_value_as_an_error() -> None:
    result = helm.lint(str(CHART), {"policy": {"queue_target": -1}}, strict=True)
    assert any(m["severity"] == 3 and "queue_target" in m["error"] for m in result["messages"]), result


def test_values_schema_embeds_the_generated_policy_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    embedded = schema["properties"]["policy"]
    generated = json_schema()
    assert set(embedded["properties"]) == set(generated["properties"])
    for name, prop in generated["properties"].items():
        # The chart only adds minLength where the rule generators need a value.
        assert {k: v for k, v in embedded["properties"][name].items() if k not in prop} in ({}, {"minLength": 1})
        assert {k: embedded["properties"][name][k] for k in prop} == prop
    assert embedded["additionalProperties"] is False


def test_autoscaling_needs_a_target_name() -> None:
    with pytest.raises(helm.HelmRenderError, match=r"autoscaling\.target\.name"):
        render({"autoscaling": {"mode": "hpa"}})
