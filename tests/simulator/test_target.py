"""The simulated vLLM target: growth rules and the demo's table."""

from __future__ import annotations

import subprocess

import pytest

from exporter.contract.exposition import parse
from simulator.demo import table
from simulator.target import TargetState, load_template, render
from tests.conftest import PYTHON, REPO
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


def test_demo_table_shows_one_row_per_pod() -> None:
    body = ('kvscale_vllm_up{namespace="d",pod="a",model_name="m"} 1\n'
            'kvscale_vllm_ttft_seconds{namespace="d",pod="a",model_name="m",quantile="0.95"} 0.25\n'
            'kvscale_vllm_ttft_seconds{namespace="d",pod="a",model_name="m",quantile="0.5"} 0.1\n'
            'kvscale_vllm_up{namespace="d",pod="b",model_name="m"} 0\n')
    lines = table(body).splitlines()
    assert lines[1].split()[:2] == ["a", "1"] and "0.25" in lines[1]
    assert lines[2].split()[:3] == ["b", "0", "-"]


def test_demo_runs_end_to_end() -> None:
    result = subprocess.run([PYTHON, "-m", "simulator.demo", "--duration", "13"], cwd=REPO, check=False,
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert "queue spike on vllm-a" in result.stdout
    last = [block for block in result.stdout.split("\n\n") if block.startswith("t=")][-1].splitlines()
    rows = {line.split()[0]: line.split() for line in last[1:]}
    assert rows["vllm-b"][1] == "0" and rows["vllm-a"][1] == "1"
