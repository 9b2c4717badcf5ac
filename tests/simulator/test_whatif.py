"""kvscale-sim: the README's table from a fixed seed, signals as the exporter computes them, the trap."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from exporter.contract.exposition import parse
from exporter.contract.policy import Policy
from exporter.vllm.reading import read
from exporter.vllm.window import History, window_quantiles
from simulator.autoscaling.spec import PodState
from simulator.engine import Fleet, Request, VirtualClock
from simulator.whatif.cli import main
from simulator.whatif.policies import candidates, parse_sweep
from simulator.whatif.signals import SATURATION, TTFT, WAITING, FleetSignals

README = Path(__file__).resolve().parents[2] / "README.md"
CHECK = re.compile(r"<!-- kvscale-sim-check: (.*?) -->\s*```text\n(.*?)```", re.S)


def test_readme_table_is_what_kvscale_sim_prints(capsys: pytest.CaptureFixture[str]) -> None:
    found = CHECK.search(README.read_text(encoding="utf-8"))
    assert found, "README has no kvscale-sim-check block"
    args, expected = found.group(1), found.group(2)
    assert main(shlex.split(args)) == 0
    printed = capsys.readouterr().out
    assert printed.strip() == expected.strip()


def test_signals_equal_the_exporter_pipeline_over_the_same_exposition() -> None:
    clock = VirtualClock()
    fleet = Fleet("llama-3.1-8b-h100", replicas=1, clock=clock)
    signals = FleetSignals(fleet, Policy())
    history = History(60.0)
    replica = fleet.replicas[0]
    for second in range(0, 91):
        clock.advance_to(float(second))
        for _ in range(12):
            fleet.submit(Request(1500, 300))
        if second % 15 == 0:
            fleet.advance(float(second))
            signals.sample(float(second))
            history.add(float(second), read(parse(replica.metrics_text())))
    ours = signals.values[replica.name]
    theirs = window_quantiles(history.span(), "llama-3.1-8b", "ttft", (0.95,))[0.95]
    assert ours[TTFT] == pytest.approx(theirs)
    assert ours[WAITING] == len(replica.engine.waiting) > 0
    policy = Policy()
    kv = replica.engine.pool.usage()
    assert ours[SATURATION] == pytest.approx(max(kv / policy.kv_target, ours[WAITING] / policy.queue_target,
                                                 theirs / policy.ttft_p95_slo_seconds))


def test_the_average_value_trap_never_asks_for_more_than_three_replicas() -> None:
    fleet = Fleet("llama-3.1-8b-h100", replicas=8, clock=VirtualClock())
    signals = FleetSignals(fleet, Policy())
    signals.values = {r.name: {SATURATION: 40.0, WAITING: 200.0} for r in fleet.replicas}
    pods = [PodState(r.name) for r in fleet.replicas]
    known = candidates(Policy())
    trap = known["keda-sat-trap"].build(Policy(), 1, 64).decide(0.0, 8, pods, signals)
    assert trap == 3  # ceil(min(40, 2) / 0.7), whatever the 8 overloaded pods say: it scales DOWN
    pods_metric = known["saturation"].build(Policy(), 1, 64).decide(0.0, 8, pods, signals)
    assert pods_metric is not None and pods_metric > 8
    keda_queue = known["keda-queue"].build(Policy(), 1, 64).decide(0.0, 8, pods, signals)
    assert keda_queue is not None and keda_queue > 8  # a summed queue is extensive: it grows with the load


def test_sweep_and_bad_arguments() -> None:
    known = candidates(Policy())
    assert [c.target for c in parse_sweep("queue=1,2.5", known)] == [1.0, 2.5]
    for bad in ("queue", "nope=1", "queue=a", "queue=0"):
        with pytest.raises(ValueError):
            parse_sweep(bad, known)
    assert main(["--policies", "nope", "--duration", "1"]) == 2
