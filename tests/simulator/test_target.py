"""The simulated vLLM target: growth rules."""

from __future__ import annotations

import pytest

from exporter.contract.exposition import parse
from simulator.target import TargetState, load_template, render
from tests.exporter.helpers import SINGLE, ManualClock

TEXT = """# TYPE g gauge
g{a="1"} 3.0
# TYPE c counter
c_total 10.0
c_created 17.0
# TYPE h histogram
h_bucket{le="1.0"} 2.0
h_bucket{le="2.0"} 5.0
h_bucket{le="+Inf"} 6.0
h_count 6.0
h_sum 9.0
"""


@pytest.mark.parametrize(("name", "labels", "want"), [
    ("g", {"a": "1"}, 3.0),  # gauges stay
    ("c_total", {}, 10.0 + 10.0 * 0.5 * 4),  # counters grow by their own base
    ("c_created", {}, 17.0),  # _created timestamps stay
    ("h_bucket", {"le": "1.0"}, 2.0),  # the lowest bucket gets no new observation
    ("h_bucket", {"le": "2.0"}, 5.0 + 2.0 * 2),  # each bucket grows by the bucket below
    ("h_bucket", {"le": "+Inf"}, 6.0 + 6.0 * 2),  # the total grows by the total
    ("h_count", {}, 6.0 + 6.0 * 2),
])
def test_growth_rules(name: str, labels: dict[str, str], want: float) -> None:
    clock = ManualClock(100.0)
    state = TargetState(load_template(TEXT), growth=0.5, clock=clock)
    samples = parse(render(state, 104.0)).samples[name]
    assert dict((tuple(sorted(lb.items())), v) for lb, v in samples)[tuple(sorted(labels.items()))] == want


def test_rendered_fixture_stays_a_valid_exposition_with_overrides() -> None:
    state = TargetState(load_template(SINGLE.read_text()), growth=1.0, clock=ManualClock())
    state.overrides["vllm:num_requests_waiting"] = 40.0
    exposition = parse(render(state, 30.0))
    assert exposition.samples["vllm:num_requests_waiting"] == [({"engine": "0", "model_name": "tiny-llama"}, 40.0)]
