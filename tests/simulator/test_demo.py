"""kvscale-demo: its pure parts (summary, view rows, scaled policy, arrivals) and a short end-to-end run
with every real part (fleet over HTTP, exporters, adapter over TLS, Prometheus with the generated rules)."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

import pytest

from exporter.contract.policy import Policy
from simulator.demo_load import Arrivals, SpikeScenario
from simulator.demo_stack import Clocks, pod_list, scaled_policy
from simulator.demo_summary import AlertSpan, Sample, ScalingEvent, Served, Timeline, per_minute_p95, report, summarize
from simulator.demo_view import fleet_sample, pod_rows, table
from tests.conftest import PYTHON, REPO

BODY = ('kvscale_vllm_up{namespace="d",pod="a",model_name="m"} 1\n'
        'kvscale_vllm_requests_waiting{namespace="d",pod="a",model_name="m"} 7\n'
        'kvscale_vllm_kv_cache_usage_ratio{namespace="d",pod="a",model_name="m"} 0.5\n'
        'kvscale_vllm_saturation_ratio{namespace="d",pod="a",model_name="m"} 1.4\n'
        'kvscale_vllm_ttft_seconds{namespace="d",pod="a",model_name="m",quantile="0.95"} 0.25\n'
        'kvscale_vllm_ttft_seconds{namespace="d",pod="a",model_name="m",quantile="0.5"} 0.1\n'
        'kvscale_vllm_up{namespace="d",pod="b",model_name="m"} 1\n'
        'kvscale_vllm_requests_waiting{namespace="d",pod="b",model_name="m"} 3\n'
        'kvscale_vllm_kv_cache_usage_ratio{namespace="d",pod="b",model_name="m"} 0.7\n'
        'kvscale_vllm_saturation_ratio{namespace="d",pod="b",model_name="m"} 0.6\n'
        'kvscale_vllm_ttft_seconds{namespace="d",pod="b",model_name="m",quantile="0.95"} 0.9\n'
        'kvscale_vllm_up{namespace="d",pod="c",model_name="m"} 0\n')


def test_table_shows_one_row_per_pod() -> None:
    lines = table(BODY).splitlines()
    assert lines[1].split()[:3] == ["a", "1", "-"] and "0.25" in lines[1]
    assert lines[3].split()[:3] == ["c", "0", "-"]


def test_fleet_sample_sums_the_queue_averages_ratios_and_takes_the_worst_ttft() -> None:
    s = fleet_sample(30.0, 3, 2, pod_rows(BODY))  # pod c is not serving: left out
    assert (s.waiting, s.ttft_p95) == (10.0, 0.9)
    assert s.kv_usage == pytest.approx(0.6) and s.saturation == pytest.approx(1.0)
    assert fleet_sample(0.0, 1, 0, {}).saturation is None


def test_summary_breach_to_serving_and_minutes_above_slo() -> None:
    timeline = Timeline(
        samples=[Sample(0, 2, 2, saturation=1.5),  # before the spike: not a breach
                 Sample(60, 2, 2, saturation=0.8), Sample(90, 2, 2, saturation=1.2), Sample(120, 4, 2, saturation=2),
                 Sample(300, 4, 4, saturation=0.5)],
        events=[ScalingEvent(30, 2, 3, "noise before the breach", 150), ScalingEvent(105, 2, 4, "up", 225),
                ScalingEvent(400, 4, 2, "down")],
        served=[Served(10, 0.2, 100), Served(20, 0.3, 100),   # minute 0: p95 0.3
                Served(70, 2.0, 100), Served(80, 0.1, 100),   # minute 1: p95 2.0
                Served(130, 1.0, 100)])                        # minute 2: p95 1.0
    s = summarize(timeline, duration=600, spike_at=45, threshold=1.0, slo=0.8, gpu_seconds=7200,
                  price_per_gpu_hour=3.0)
    assert (s.breach_at, s.scale_up_at, s.serving_at, s.breach_to_serving) == (90, 105, 225, 135)
    assert (s.replicas_start, s.replicas_peak, s.replicas_end, s.scaling_events) == (2, 4, 4, 3)
    assert (s.peak_ttft_p95, s.minutes_above_slo, s.minutes_measured) == (2.0, 2, 3)
    assert s.gpu_hours == 2.0 and s.tokens == 500
    assert s.cost_per_million_tokens == pytest.approx(2.0 * 3.0 / 500 * 1e6)
    text = "\n".join(report(s, slo=0.8))
    assert "breach -> new replicas serving: 135 s" in text and "HPA scale-up 15 s later" in text


def test_report_groups_alerts_and_tells_fired_from_pending_only() -> None:
    alerts = [AlertSpan("KvscaleVLLMTargetDown", 100, None, 220, "vllm-2"),
              AlertSpan("KvscaleVLLMTargetDown", 130, None, 250, "vllm-3"),
              AlertSpan("KvscaleKVCacheNearlyFull", 90, 390, None, "vllm-0")]
    s = summarize(Timeline(alerts=alerts), duration=600, spike_at=45, threshold=1.0, slo=0.8, gpu_seconds=0,
                  price_per_gpu_hour=1)
    lines = report(s, slo=0.8)
    assert lines[-2:] == [
        "alert KvscaleKVCacheNearlyFull on 1 pod: pending at 90 s, FIRED at 390 s, still active at the end",
        "alert KvscaleVLLMTargetDown on 2 pods: pending from 100 s, never fired (its for: did not elapse), "
        "last cleared at 250 s"]


def test_summary_without_a_breach() -> None:
    s = summarize(Timeline(samples=[Sample(0, 2, 2, saturation=0.3)]), duration=60, spike_at=10, threshold=1.0,
                  slo=0.8, gpu_seconds=0, price_per_gpu_hour=1)
    assert s.breach_at is None and s.breach_to_serving is None and s.cost_per_million_tokens is None
    assert "never breached" in "\n".join(report(s, slo=0.8))


def test_per_minute_p95_is_nearest_rank() -> None:
    served = [Served(5, float(i), 1) for i in range(1, 21)]  # 20 values: rank ceil(19) -> 19
    assert per_minute_p95(served) == {0: 19.0}


def test_scaled_policy_compresses_durations_and_stretches_rates() -> None:
    policy = scaled_policy(Policy(), 10.0)
    base = Policy()
    assert policy.kv_cache_usage_alert_for_seconds == base.kv_cache_usage_alert_for_seconds // 10
    assert policy.rate_window_seconds == base.rate_window_seconds // 10
    assert policy.preemptions_per_second_alert == pytest.approx(base.preemptions_per_second_alert * 10)
    # Measured in simulated time: unchanged.
    assert policy.ttft_p95_slo_seconds == base.ttft_p95_slo_seconds
    assert policy.scale_down_stabilization_seconds == base.scale_down_stabilization_seconds
    assert Clocks(10.0).wall(15.0) == 1.5


def test_arrivals_follow_the_spike_and_the_seed() -> None:
    scenario = SpikeScenario(1000.0, base_rate=2.0, spike_rate=20.0)
    first = Arrivals(scenario, seed=7).due(1000.0)
    again = Arrivals(scenario, seed=7).due(1000.0)
    assert [(r.arrival, r.prompt_tokens, r.output_tokens) for r in first] == \
        [(r.arrival, r.prompt_tokens, r.output_tokens) for r in again]
    assert [r.arrival for r in Arrivals(scenario, seed=8).due(1000.0)] != [r.arrival for r in first]
    stepwise = Arrivals(scenario, seed=7)
    part = stepwise.due(500.0)
    assert all(r.arrival <= 500.0 for r in part)
    assert [r.arrival for r in part + stepwise.due(1000.0)] == [r.arrival for r in first]
    in_spike = sum(1 for r in first if scenario.spike_at <= r.arrival < scenario.spike_end)
    outside = len(first) - in_spike
    # 400 s at 20/s against 600 s at 2/s: expectations 8000 and 1200
    assert 7500 < in_spike < 8500 and 1000 < outside < 1400
    assert all(a.arrival <= b.arrival for a, b in itertools.pairwise(first))


def test_pod_inventory_is_owned_by_the_deployments_replica_set() -> None:
    items = pod_list(["vllm-7d9c6-0"])["items"]
    assert isinstance(items, list)
    assert items[0]["metadata"]["ownerReferences"][0]["name"] == "vllm-7d9c6"


def run_demo(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "simulator.demo", "--out", str(out), *args], cwd=REPO, check=False,
                          capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)


def test_demo_end_to_end_short_mode(tmp_path: Path) -> None:
    """45 wall seconds at 15x: 11 simulated minutes, spike from 101 s to 371 s, 30 s cold starts."""
    result = run_demo(tmp_path, "--duration", "45", "--speed", "15", "--cold-start", "30")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    png = (tmp_path / "demo.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["replicas_peak"] > summary["replicas_start"] == 2
    assert summary["breach_at"] >= summary["spike_at"]
    assert summary["scale_up_at"] >= summary["breach_at"]
    assert 0 < summary["breach_to_serving_seconds"] < summary["duration"]
    assert summary["serving_at"] - summary["scale_up_at"] == pytest.approx(30.0, abs=0.5)  # the cold start
    assert summary["tokens"] > 0 and summary["gpu_hours"] > 0 and summary["cost_per_million_tokens"] > 0
    assert summary["minutes_measured"] >= 10
    text = (tmp_path / "summary.txt").read_text()
    assert "threshold breach -> new replicas serving" in text
    assert "prometheus not found" not in result.stdout  # the real Prometheus ran with the rules


def test_demo_five_seconds_finishes(tmp_path: Path) -> None:
    result = run_demo(tmp_path, "--duration", "5")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert json.loads((tmp_path / "summary.json").read_text())["duration"] == 50.0
