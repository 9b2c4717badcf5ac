from __future__ import annotations

import pytest

from adapter.provider import MetricInfo
from adapter.service import aggregate
from exporter.contract.catalog import Aggregation


@pytest.mark.parametrize(("aggregation", "values", "expected"), [
    ("sum", [5, 7], 12),
    ("sum", [0.5, 0.25, 0.0], 0.75),
    ("mean", [0.5, 1.0], 0.75),
    ("mean", [2.0, 4.0, 0.0], 2.0),
    ("max", [0.2, 0.9, 0.4], 0.9),
    ("max", [0.0], 0.0),
])
def test_aggregate(aggregation: Aggregation, values: list[float], expected: float) -> None:
    info = MetricInfo("m", None, False, aggregation)
    assert aggregate(info, values) == pytest.approx(expected)
