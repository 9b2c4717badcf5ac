"""The simulator's /metrics against the same release's renders: families, types, labels and buckets."""

from __future__ import annotations

import pytest

from exporter.contract.vllm_names import COUNTERS, GAUGES, HISTOGRAMS
from tests.simulator.test_engine_metrics import Shape, busy_fleet, shape
from tests.vllm.conftest import Rendered

pytestmark = pytest.mark.vllm

SIMULATED = "0.33.0"
"""The release simulator/engine/exposition.py writes (its docstring); other releases are held to what kvscale reads."""


def read_by_kvscale(full: Shape) -> Shape:
    names = {f"vllm:{n}" for group in (GAUGES, COUNTERS, HISTOGRAMS) for ns in group.values() for n in ns}
    names |= {n.removesuffix("_total") for n in names} | {"vllm:cache_config_info"}
    return {key: value for key, value in full.items() if key[0] in names}


def test_the_simulator_writes_what_vllm_renders(rendered: Rendered) -> None:
    vllm = shape(rendered.renders["plain-2048"][-1].body)
    simulated = shape(busy_fleet(dp=1).replicas[0].metrics_text())
    if rendered.version == SIMULATED:
        assert simulated == vllm
    # Whatever the release, the families kvscale reads have the same names, types, labels and buckets.
    theirs, ours = read_by_kvscale(vllm), read_by_kvscale(simulated)
    assert theirs and theirs.keys() <= ours.keys()
    for key, samples in theirs.items():
        if key[0] == "vllm:cache_config_info":  # its labels are every CacheConfig field: never an identity
            assert {"block_size", "num_gpu_blocks", "engine"} <= {n for _, labels, _ in samples for n in labels}
            continue
        assert samples == ours[key], key
