"""Per-target bounds (issue 11, defect 5): table-driven on the pure check, then end to end."""

from __future__ import annotations

import pytest

from exporter.contract.exposition import parse
from exporter.vllm.limits import LimitError, TargetLimits, check
from exporter.vllm.reading import PodReading, read
from tests.exporter.helpers import SINGLE, Body, ManualClock, by_pod, errors, exporter_over

GAUGE = "vllm:num_requests_running"
COUNTER = "vllm:num_preemptions_total"


def reading(text: str) -> PodReading:
    return read(parse(text))


def models(n: int, name: str = "m{}") -> str:
    return "".join(f'{GAUGE}{{engine="0",model_name="{name.format(i)}"}} 1\n' for i in range(n))


def engines(n: int) -> str:
    return "".join(f'{GAUGE}{{engine="{i}",model_name="m"}} 1\n' for i in range(n))


def splits(n: int, value: str = "r{}") -> str:
    return "".join(f'{COUNTER}{{engine="0",model_name="m",reason="{value.format(i)}"}} 1\n' for i in range(n))


SMALL = TargetLimits(max_models=3, max_engines=4, max_series=5, max_label_value_bytes=8)


@pytest.mark.parametrize(("text", "refused"), [
    (models(3), None),
    (models(4), "4 model_name values (limit 3)"),
    (engines(4), None),
    (engines(5), "5 engines (limit 4)"),
    (splits(5), None),
    (splits(6), "6 counter series and buckets (limit 5)"),
    (models(1, "12345678"), None),
    (models(1, "123456789"), "a model_name value of 9 bytes (limit 8)"),
    (models(1, "ééé"), None),  # 6 bytes
    (models(1, "éééé{}"), "a model_name value of 9 bytes (limit 8)"),
    (splits(1, "r" * 9 + "{}"), "a reason value of 10 bytes (limit 8)"),
])
def test_limits(text: str, refused: str | None) -> None:
    if refused is None:
        check(reading(text), SMALL)
    else:
        with pytest.raises(LimitError, match=refused.replace("(", r"\(").replace(")", r"\)")):
            check(reading(text), SMALL)


def test_the_defaults_take_every_shipped_fixture() -> None:
    check(reading(SINGLE.read_text()), TargetLimits())


async def test_two_thousand_model_names_are_one_limit_error_not_six_thousand_series() -> None:
    flood = Body(SINGLE.read_text() + models(2000, "flood-{}"))
    huge_name = Body(SINGLE.read_text() + models(1, "x" * 100_000 + "{}"))
    clock = ManualClock(100.0)
    async with exporter_over({"flood": flood, "huge": huge_name, "ok": Body(SINGLE.read_text())}, clock) as exp:
        series = await exp.run_cycle()
    assert by_pod(series, "kvscale_vllm_up") == {"flood": 0.0, "huge": 0.0, "ok": 1.0}
    assert errors(series)[("flood", "limit")] == 1
    assert errors(series)[("huge", "limit")] == 1
    assert len(exp.body) < 20_000  # the 100 kB name is not copied into /metrics
    assert len([s for s in series if s.labels.get("pod") == "flood"]) < 20
