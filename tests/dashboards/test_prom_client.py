"""Prometheus API answers turned into series, and failures into one error type."""

from __future__ import annotations

import math
from typing import Any

import pytest

from dashboards.prom_client import PrometheusClient, PrometheusError, Series, parse_result
from tests.conftest import free_port


@pytest.mark.parametrize(("body", "expected"), [
    ({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"pod": "a"}, "values": [[1.0, "0.5"], [2.0, "0.75"]]}]}},
     [Series({"pod": "a"}, ((1.0, 0.5), (2.0, 0.75)))]),
    ({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"pod": "b"}, "value": [3.0, "4"]}]}},
     [Series({"pod": "b"}, ((3.0, 4.0),))]),
    ({"status": "success", "data": {"resultType": "scalar", "result": [5.0, "1"]}},
     [Series({}, ((5.0, 1.0),))]),
    ({"status": "success", "data": {"resultType": "vector", "result": []}}, []),
])
def test_parse_result(body: dict[str, Any], expected: list[Series]) -> None:
    assert parse_result(body) == expected


def test_parse_result_keeps_nan() -> None:
    body = {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "NaN"]}]}}
    assert math.isnan(parse_result(body)[0].points[0][1])


def test_parse_result_raises_with_prometheus_error() -> None:
    with pytest.raises(PrometheusError, match="bad_data: parse error"):
        parse_result({"status": "error", "errorType": "bad_data", "error": "parse error"})


def test_unreachable_prometheus_is_a_prometheus_error() -> None:
    client = PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(PrometheusError, match="cannot query") as info:
        client.query("1", at=0)
    assert isinstance(info.value.__cause__, OSError)
