"""kvscale's stat-logger plugin inside the real vLLM: loaded by vLLM's own loader, exact against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.contract.catalog import QUANTILES
from exporter.contract.exposition import parse
from exporter.contract.vllm_names import ENGINE_FAULTS, ENGINE_KV_PEAK, ENGINE_OBSERVATIONS, ENGINE_QUANTILES
from tests.vllm.conftest import Rendered
from tests.vllm.scenarios import Scenario

pytestmark = pytest.mark.vllm


def raw(scenario: Scenario, short: str) -> list[float]:
    """Every value of one latency the scenario recorded, all engines (the renderer runs within the window)."""
    out: list[float] = []
    for step in scenario.steps:
        for r in step.records:
            if r.iteration:
                it = r.iteration
                out += {"ttft": it.ttft, "itl": it.itl, "e2e": [f.e2e for f in it.finished],
                        "queue": [f.queue for f in it.finished]}[short]
    return out


def test_vllm_loads_the_plugin_through_its_entry_point_as_one_aggregate_logger(rendered: Rendered) -> None:
    # StatLoggerManager puts an AggregateStatLoggerBase as is (a per-engine logger would be wrapped in
    # PerEngineStatLoggerAdapter) and keeps its own PrometheusStatLogger beside it.
    assert rendered.renders["dp2-unequal"][0].loggers == ("KvscaleStatLogger", "PrometheusStatLogger")
    assert rendered.renders["single-engine"][0].loggers == ("PrometheusStatLogger",)
    assert "kvscale_engine" not in rendered.renders["single-engine"][-1].body


def test_quantiles_are_numpys_over_every_engines_raw_values(rendered: Rendered) -> None:
    scenario = rendered.scenarios["dp2-unequal"]
    exp = parse(rendered.renders["dp2-unequal"][-1].body)
    counts = {labels["latency"]: v for labels, v in exp.samples[ENGINE_OBSERVATIONS]}
    for short, family in ENGINE_QUANTILES.items():
        values = raw(scenario, short)
        assert counts[short] == len(values) > 0
        got = {float(labels["quantile"]): v for labels, v in exp.samples[family]}
        want = {q: float(np.quantile(values, q)) for q in QUANTILES}
        assert got == pytest.approx(want, rel=1e-12), short
        assert all(labels["model_name"] == "tiny-llama" for labels, _ in exp.samples[family])


def test_peak_kv_usage_per_engine_and_garbage_counted_not_raised(rendered: Rendered) -> None:
    scenario = rendered.scenarios["dp2-unequal"]
    exp = parse(rendered.renders["dp2-unequal"][-1].body)
    peaks = {labels["engine"]: v for labels, v in exp.samples[ENGINE_KV_PEAK]}
    assert peaks == {str(e): max(r.scheduler.kv_usage for s in scenario.steps for r in s.records
                                 if r.engine == e and r.scheduler) for e, _ in scenario.engines}
    # The last step handed the plugin three objects that are no vLLM stats: counted, vLLM's call returned.
    faults = [[v for _, v in parse(r.body).samples[ENGINE_FAULTS]] for r in rendered.renders["dp2-unequal"]]
    assert faults == [[0], [0], [3]]
