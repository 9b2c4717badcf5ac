"""Recording rules: names, and values checked by promtool on hand-computed inputs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.recording import recording_groups
from alerts.render import build_groups, render_files, write_files
from exporter.contract.policy import Policy, from_mapping

VLLM_POD = 'job="vllm", namespace="demo", pod="vllm-a", model_name="tiny-llama"'
EXP = 'job="kvscale-exporter", instance="n1:9400", namespace="demo", model_name="tiny-llama"'
KSM = 'job="kube-state-metrics", namespace="demo"'


def _buckets(name: str, engine: str, per_minute: dict[str, int]) -> list[dict[str, str]]:
    return [{"series": f'{name}{{{VLLM_POD}, engine="{engine}", le="{le}"}}', "values": f"0+{step}x20"}
            for le, step in per_minute.items()]


# Engine 0 observes 60/min in (0.1, 0.25], engine 1 60/min in (0.25, 0.5]; engine 1 is stored with
# the underscore spelling Prometheus uses after OpenMetrics negotiation. Summed: 1/s at le=0.25,
# 2/s at le=0.5, so p50 = 0.1 + 0.15 * 1/1 = 0.25 and p95 = 0.25 + 0.25 * 0.9/1 = 0.475.
TTFT = (_buckets("vllm:time_to_first_token_seconds_bucket", "0", {"0.1": 0, "0.25": 60, "0.5": 60, "+Inf": 60})
        + _buckets("vllm_time_to_first_token_seconds_bucket", "1", {"0.1": 0, "0.25": 0, "0.5": 60, "+Inf": 60}))

RECORDING_TESTS: list[dict[str, Any]] = [
    {"interval": "1m", "input_series": TTFT, "promql_expr_test": [
        {"expr": 'namespace_pod_model:vllm_time_to_first_token_seconds:histogram_quantile{quantile="0.5"}',
         "eval_time": "10m",
         "exp_samples": [{"labels": 'namespace_pod_model:vllm_time_to_first_token_seconds:histogram_quantile'
                                    '{namespace="demo", pod="vllm-a", model_name="tiny-llama", quantile="0.5"}',
                          "value": 0.25}]},
        {"expr": 'namespace_model:vllm_time_to_first_token_seconds:histogram_quantile{quantile="0.95"}',
         "eval_time": "10m",
         "exp_samples": [{"labels": 'namespace_model:vllm_time_to_first_token_seconds:histogram_quantile'
                                    '{namespace="demo", model_name="tiny-llama", quantile="0.95"}',
                          "value": 0.475}]},
    ]},
    {"interval": "1m", "input_series": [
        {"series": f'vllm:generation_tokens_total{{{VLLM_POD}, engine="0"}}', "values": "0+600x20"},
        {"series": f'vllm:generation_tokens_total{{{VLLM_POD}, engine="1"}}', "values": "0+1200x20"},
    ], "promql_expr_test": [
        {"expr": "namespace_pod_model:vllm_generation_tokens:rate5m", "eval_time": "10m",
         "exp_samples": [{"labels": 'namespace_pod_model:vllm_generation_tokens:rate5m'
                                    '{namespace="demo", pod="vllm-a", model_name="tiny-llama"}', "value": 30}]},
    ]},
    # Token-weighted cost: (2 $ x 400 tok/s + 4 $ x 100 tok/s) / 500 tok/s = 2.4 $ per 1M tokens.
    {"interval": "1m", "input_series": [
        {"series": f'kvscale_vllm_cost_per_million_tokens_dollars{{{EXP}, pod="a"}}', "values": "2x10"},
        {"series": f'kvscale_vllm_prompt_tokens_per_second{{{EXP}, pod="a"}}', "values": "100x10"},
        {"series": f'kvscale_vllm_generation_tokens_per_second{{{EXP}, pod="a"}}', "values": "300x10"},
        {"series": f'kvscale_vllm_cost_per_million_tokens_dollars{{{EXP}, pod="b"}}', "values": "4x10"},
        {"series": f'kvscale_vllm_prompt_tokens_per_second{{{EXP}, pod="b"}}', "values": "0x10"},
        {"series": f'kvscale_vllm_generation_tokens_per_second{{{EXP}, pod="b"}}', "values": "100x10"},
        # An idle pod has no cost series: its tokens must not dilute the average.
        {"series": f'kvscale_vllm_generation_tokens_per_second{{{EXP}, pod="c"}}', "values": "0x10"},
    ], "promql_expr_test": [
        {"expr": "namespace_model:kvscale_vllm_cost_per_million_tokens_dollars:token_weighted", "eval_time": "5m",
         "exp_samples": [{"labels": "namespace_model:kvscale_vllm_cost_per_million_tokens_dollars:token_weighted"
                                    '{namespace="demo", model_name="tiny-llama"}', "value": 2.4}]},
        {"expr": "namespace_model:kvscale_vllm_generation_tokens_per_second:sum", "eval_time": "5m",
         "exp_samples": [{"labels": "namespace_model:kvscale_vllm_generation_tokens_per_second:sum"
                                    '{namespace="demo", model_name="tiny-llama"}', "value": 400}]},
    ]},
    # StatefulSet pods join their workload directly (no ReplicaSet hop).
    {"interval": "1m", "input_series": [
        {"series": f'kube_pod_owner{{{KSM}, pod="llm-0", owner_kind="StatefulSet", owner_name="llm"}}',
         "values": "1x10"},
        {"series": f'kvscale_vllm_saturation_ratio{{{EXP}, pod="llm-0"}}', "values": "0.5x10"},
        {"series": f'kube_horizontalpodautoscaler_info{{{KSM}, horizontalpodautoscaler="llm-hpa", '
                   'scaletargetref_kind="StatefulSet", scaletargetref_name="llm"}', "values": "1x10"},
    ], "promql_expr_test": [
        {"expr": "namespace_hpa:kvscale_vllm_saturation_ratio:avg", "eval_time": "5m",
         "exp_samples": [{"labels": 'namespace_hpa:kvscale_vllm_saturation_ratio:avg'
                                    '{namespace="demo", horizontalpodautoscaler="llm-hpa"}', "value": 0.5}]},
    ]},
]


def test_recorded_values(promtool: str, tmp_path: Path) -> None:
    groups = build_groups(Policy())
    order = [g.name for g in groups]
    paths = sorted((p for p in write_files(render_files(groups), tmp_path) if p.name.endswith(".rules.yml")),
                   key=lambda p: order.index(p.name.removesuffix(".rules.yml")))
    test_file = tmp_path / "recording.test.yml"
    test_file.write_text(yaml.safe_dump({"rule_files": [str(p) for p in paths], "evaluation_interval": "1m",
                                         "group_eval_order": order, "tests": RECORDING_TESTS}, sort_keys=False))
    result = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


LEVEL_METRIC_OPERATIONS = re.compile(r"^[a-z_]+:[a-z_][a-z0-9_]*:[a-z0-9_]+$")


def test_recording_names_are_level_metric_operations() -> None:
    names = [r.record for g in recording_groups(Policy()) for r in g.recordings()]
    assert names
    bad = [n for n in names if not LEVEL_METRIC_OPERATIONS.match(n)]
    assert not bad


@pytest.mark.parametrize(("window", "suffix"), [(300, "rate5m"), (120, "rate2m"), (90, "rate90s")])
def test_rate_window_setting_names_and_windows_the_rules(window: int, suffix: str) -> None:
    groups = recording_groups(from_mapping({"rate_window_seconds": window}))
    rates = [r for g in groups for r in g.recordings() if r.record.endswith(f":{suffix}")]
    assert len(rates) == 10  # TTFT and ITL buckets at two levels, three counters, rejections, outcomes at two
    assert all(f"[{suffix.removeprefix('rate')}]" in r.expr for r in rates if "rate(" in r.expr)


def test_vllm_selector_is_applied_to_vllm_series_only() -> None:
    groups = recording_groups(from_mapping({"vllm_selector": 'job="my-vllm"'}))
    exprs = [r.expr for g in groups for r in g.recordings()]
    vllm_exprs = [e for e in exprs if "vllm[:_]" in e]
    assert vllm_exprs and all('job="my-vllm"' in e for e in vllm_exprs)
    assert not any('job="my-vllm"' in e for e in exprs if "vllm[:_]" not in e)
