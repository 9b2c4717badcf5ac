from __future__ import annotations

import promql_parser
import pytest

from adapter.promquery import matcher, matchers, query_for
from adapter.promsource import values_by_pod
from adapter.provider import served_metrics
from adapter.selectors import parse_selector

INFO = {m.name: m for m in served_metrics(60)}


@pytest.mark.parametrize(("selector", "expected"), [
    ("a=b", 'a="b"'), ("a!=b", 'a!="b"'), ("a in (x,y.z)", 'a=~"x|y\\\\.z"'), ("a notin (x)", 'a!~"x"'),
    ("a", 'a!=""'), ("!a", 'a=""'),
])
def test_matcher(selector: str, expected: str) -> None:
    assert matcher(parse_selector(selector).requirements[0]) == expected


@pytest.mark.parametrize(("selector", "expected"), [
    ("", 'namespace="ns"'),
    ("model_name=m", 'namespace="ns",model_name="m"'),
    ("example.com/x=y", None),  # a key PromQL cannot hold matches no series
    ("!example.com/x", 'namespace="ns"'),
])
def test_matchers(selector: str, expected: str | None) -> None:
    assert matchers("ns", parse_selector(selector)) == expected


@pytest.mark.parametrize("name", sorted(INFO))
def test_every_metric_maps_to_valid_promql(name: str) -> None:
    expr = query_for(INFO[name], "demo", parse_selector(""), max_age=30)
    assert expr is not None
    promql_parser.parse(expr)  # raises on a syntax error
    assert 'unless on(namespace, pod) (kvscale_vllm_up{namespace="demo"} == 0)' in expr
    assert "<= 30)" in expr


def test_quantile_defaults_to_p95_and_falls_back_to_buckets() -> None:
    expr = query_for(INFO["kvscale_vllm_ttft_seconds"], "demo", parse_selector(""), max_age=30)
    assert expr is not None
    assert 'quantile="0.95"' in expr
    assert "histogram_quantile(0.95, sum by (namespace, pod, le)" in expr
    assert 'vllm[:_]time_to_first_token_seconds_bucket' in expr
    assert "[60s]" in expr


def test_unsatisfiable_selector_is_no_query() -> None:
    assert query_for(INFO["kvscale_vllm_requests_waiting"], "d", parse_selector("a.b/c=d"), max_age=1) is None


def test_values_by_pod_drops_nan_and_unlabelled() -> None:
    result = [{"metric": {"pod": "a"}, "value": [10.0, "1.5"]}, {"metric": {"pod": "b"}, "value": [10.0, "NaN"]},
              {"metric": {}, "value": [10.0, "3"]}, {"metric": {"pod": "c"}, "value": [10.0, "+Inf"]}]
    assert values_by_pod(result) == {"a": [(10.0, 1.5)]}
