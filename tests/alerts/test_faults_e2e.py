"""Faults driven through simulated engines and the real exporter into a real Prometheus.

Each group runs one Prometheus with the rules built from a policy whose durations are shortened
through the policy itself (seconds, not minutes), drives faults through simulator.target's
/control endpoint (overrides, HTTP faults) or the fake NVML's control file, and checks which
alerts fire, which stay quiet, and that they resolve only once the fault ends; the fixed panels
are evaluated on the same Prometheus and their values asserted.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from adapter.selfmetrics import SelfMetrics
from alerts.render import build_groups, render_files, write_files
from dashboards import build
from dashboards.promql import panel_queries, substitute
from exporter.contract.policy import Policy, from_mapping
from tests.conftest import (
    VLLM_FIXTURES,
    Processes,
    PrometheusServer,
    start_exporter,
    start_target,
)

# Durations in seconds; lines chosen so the fixtures' healthy values sit on the right side of them.
SHORT = {"rate_window_seconds": 10, "ttft_alert_for_seconds": 2, "itl_alert_for_seconds": 2,
         "e2e_alert_for_seconds": 2, "ttft_p95_slo_seconds": 0.01, "itl_p95_slo_seconds": 0.001,
         "e2e_p95_slo_seconds": 0.01, "slo_min_requests_per_second": 1.0, "engine_stalled_for_seconds": 3,
         "queue_far_above_target_for_seconds": 3, "queue_backlog_alert_for_seconds": 3,
         "model_down_for_seconds": 3, "target_down_for_seconds": 3, "request_errors_for_seconds": 2,
         "request_aborts_for_seconds": 2, "hpa_replicas_mismatch_for_seconds": 3,
         "hpa_metrics_unavailable_for_seconds": 2, "absent_for_seconds": 3, "adapter_stale_for_seconds": 2,
         "adapter_errors_for_seconds": 2, "exporter_no_targets_for_seconds": 3, "gpu_temperature_for_seconds": 2,
         "gpu_ecc_window_seconds": 12, "xid_window_seconds": 60, "gpu_throttle_for_seconds": 2,
         "gpu_lost_for_seconds": 2, "collector_failing_for_seconds": 3}
SINGLE = VLLM_FIXTURES / "v0.33.0-single-engine.prom"
ERROR_SERIES = 'vllm:request_success_total{engine="0",finished_reason="error",model_name="tiny-llama"}'


def _rules(policy: Policy, directory: Path) -> list[Path]:
    groups = build_groups(policy)
    order = [f"{g.name}.rules.yml" for g in groups]
    written = [p for p in write_files(render_files(groups), directory) if p.name in order]
    return sorted(written, key=lambda p: order.index(p.name))


def _post(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(f"{url}/control", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5):
        pass


def _host(url: str) -> str:
    return url.removeprefix("http://")


@dataclass
class Rig:
    prometheus: PrometheusServer
    targets: dict[str, str]

    def firing(self, alert: str) -> set[tuple[tuple[str, str], ...]]:
        result = self.prometheus.query(f'ALERTS{{alertname="{alert}", alertstate="firing"}}')
        keep = ("pod", "model_name", "horizontalpodautoscaler", "gpu", "source", "reason")
        return {tuple(sorted((k, v) for k, v in r["metric"].items() if k in keep)) for r in result}

    def until(self, check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                active = sorted({r["metric"]["alertname"] for r in self.prometheus.query("ALERTS")})
                raise AssertionError(f"{what} not reached in {timeout}s; active alerts: {active}")
            time.sleep(0.5)

    def fires_for(self, alert: str, **labels: str) -> None:
        want = tuple(sorted(labels.items()))
        self.until(lambda: want in self.firing(alert), f"{alert} firing for {labels}")

    def resolves(self, alert: str) -> None:
        self.until(lambda: not self.firing(alert), f"{alert} resolved")


def panel(stem: str, title: str, policy: Policy) -> str:
    """The first query of a built panel, with the dashboard variables set to All."""
    dash = build.render(policy)[stem]
    query = next(q for q in panel_queries(dash) if q.panel == title)
    return substitute(query.expr, {"cluster": ".*", "namespace": ".*", "model": ".*", "pod": ".*", "node": ".*",
                                   "__rate_interval": "10s", "__range": "10m"})


def _fixture_for_model(tmp: Path, model: str) -> Path:
    path = tmp / f"{model}.prom"
    path.write_text(SINGLE.read_text().replace('model_name="tiny-llama"', f'model_name="{model}"'))
    return path


def _ksm_fixture(tmp: Path) -> Path:
    """Two HPAs on kvscale metrics: "vllm" healthy at its desired 2, "other" unable to read its metric and
    short of the 6 replicas it wants."""
    lines = []
    for hpa, active, desired, current in (("vllm", 1, 2, 2), ("other", 0, 6, 4)):
        labels = f'namespace="demo",horizontalpodautoscaler="{hpa}"'
        lines += [f'kube_horizontalpodautoscaler_status_desired_replicas{{{labels}}} {desired}',
                  f'kube_horizontalpodautoscaler_status_current_replicas{{{labels}}} {current}',
                  f'kube_horizontalpodautoscaler_spec_max_replicas{{{labels}}} 8',
                  f'kube_horizontalpodautoscaler_spec_target_metric{{{labels},metric_name="kvscale_vllm_requests_'
                  'waiting",metric_target_type="average"} 5']
        for status, value in (("true", active), ("false", 1 - active)):
            lines.append(f'kube_horizontalpodautoscaler_status_condition{{{labels},condition="ScalingActive",'
                         f'status="{status}"}} {value}')
    path = tmp / "ksm.prom"
    path.write_text("\n".join(["# TYPE kube_horizontalpodautoscaler_status_desired_replicas gauge", *lines]) + "\n")
    return path


def _adapter_fixture(tmp: Path) -> Path:
    """The adapter's real self-metrics exposition: 90 answers and 10 server errors, data 2 s old."""
    metrics = SelfMetrics(registry=CollectorRegistry(), freshness=lambda: {"http://10.0.0.1:9400": 2.0})
    for code, count in ((200, 90), (503, 10)):
        for _ in range(count):
            metrics.observe("custom", code, 0.01)
    body, _ = metrics.render()
    path = tmp / "adapter.prom"
    path.write_bytes(body)
    return path


@pytest.fixture(scope="module")
def vllm_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("faults-vllm")
    policy = from_mapping(SHORT)
    procs = Processes()
    prometheus: PrometheusServer | None = None
    try:
        other = _fixture_for_model(tmp, "other-model")
        # The busy pod's fixture finishes 2 requests in error for every 3 answered, once its override is lifted.
        busy = tmp / "busy.prom"
        busy.write_text(SINGLE.read_text().replace(f"{ERROR_SERIES} 0.0", f"{ERROR_SERIES} 2.0"))
        targets = {"busy": start_target(procs, "busy", busy, growth=1.0),
                   "quiet": start_target(procs, "quiet", SINGLE, growth=0.02),
                   "stall": start_target(procs, "stall", SINGLE, growth=1.0),
                   "m1": start_target(procs, "m1", other, growth=0.2),
                   "m2": start_target(procs, "m2", other, growth=0.2)}
        _post(targets["busy"], {"set": {ERROR_SERIES: 0}})  # no errors until the fault
        ksm = start_target(procs, "ksm", _ksm_fixture(tmp), growth=0.0)
        adapter = start_target(procs, "adapter", _adapter_fixture(tmp), growth=1.0)
        targets |= {"ksm": ksm, "adapter": adapter}
        exporter = start_exporter(procs, "exporter", {f"demo/{pod}": targets[pod] for pod in
                                                      ("busy", "quiet", "stall", "m1", "m2")}, "--window", "6")
        vllm = [{"targets": [_host(targets[pod])], "labels": {"namespace": "demo", "pod": pod}}
                for pod in ("busy", "quiet", "stall", "m1", "m2")]
        scrape = [{"job_name": "kvscale-exporter", "honor_labels": True,
                   "static_configs": [{"targets": [_host(exporter)]}]},
                  {"job_name": "vllm", "static_configs": vllm},
                  {"job_name": "kube-state-metrics", "honor_labels": True,
                   "static_configs": [{"targets": [_host(ksm)]}]},
                  {"job_name": "kvscale-adapter", "static_configs": [{"targets": [_host(adapter)]}]}]
        prometheus = PrometheusServer({"scrape_configs": scrape}, _rules(policy, tmp / "rules"))
        prometheus.wait_for("kvscale_vllm_up == 1", timeout=60, min_results=5)
        yield Rig(prometheus, targets)
    finally:
        if prometheus is not None:
            prometheus.close()
        procs.stop()


def value(rig: Rig, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
    """What a panel shows: each series' labels (without the name) and value, evaluated now."""
    return {tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__")): float(r["value"][1])
            for r in rig.prometheus.query(expr)}


def test_a_stalled_engine_alerts_and_resolves_when_tokens_flow_again(vllm_rig: Rig) -> None:
    stall = vllm_rig.targets["stall"]
    assert not vllm_rig.firing("KvscaleEngineStalled")
    # 7 running, 30 waiting, the output counter flat (a reset to 0, then nothing).
    _post(stall, {"set": {"vllm:num_requests_waiting": 30, "vllm:generation_tokens_total": 0}})
    vllm_rig.fires_for("KvscaleEngineStalled", pod="stall", model_name="tiny-llama")
    time.sleep(3)
    assert vllm_rig.firing("KvscaleEngineStalled") == {(("model_name", "tiny-llama"), ("pod", "stall"))}
    _post(stall, {"clear": True})
    vllm_rig.resolves("KvscaleEngineStalled")


def test_a_flat_queue_far_above_target_alerts_for_as_long_as_it_lasts(vllm_rig: Rig) -> None:
    policy = from_mapping(SHORT)
    for pod in ("m1", "m2"):
        _post(vllm_rig.targets[pod], {"set": {"vllm:num_requests_waiting": 45}})
    vllm_rig.fires_for("KvscaleQueueFarAboveTarget", model_name="other-model")
    # The step up was growth; once the queue sits flat at 9x target the growth alert resolves, and this
    # one must not.
    vllm_rig.resolves("KvscaleQueueBacklogGrowing")
    assert vllm_rig.firing("KvscaleQueueFarAboveTarget") == {(("model_name", "other-model"),)}
    # The fleet's "Waiting per pod" stat: (4 + 4 + 4 + 45 + 45) / 5 pods.
    assert list(value(vllm_rig, panel("fleet", "Waiting per pod", policy)).values()) == [pytest.approx(20.4)]
    for pod in ("m1", "m2"):
        _post(vllm_rig.targets[pod], {"clear": True})
    vllm_rig.resolves("KvscaleQueueFarAboveTarget")


def test_every_replica_of_a_model_down_pages_for_that_model_only(vllm_rig: Rig) -> None:
    policy = from_mapping(SHORT)
    _post(vllm_rig.targets["m1"], {"fault": "http_500"})
    time.sleep(6)  # one replica down: the model still serves
    assert not vllm_rig.firing("KvscaleModelDown")
    _post(vllm_rig.targets["m2"], {"fault": "http_500"})
    vllm_rig.fires_for("KvscaleModelDown", model_name="other-model")
    assert vllm_rig.firing("KvscaleModelDown") == {(("model_name", "other-model"),)}
    severity = vllm_rig.prometheus.query('ALERTS{alertname="KvscaleModelDown", alertstate="firing"}')
    assert severity[0]["metric"]["severity"] == "critical"
    shown = value(vllm_rig, panel("fleet", "Models with no replica serving", policy))
    assert shown == {(("model_name", "other-model"), ("namespace", "demo")): 0.0}
    for pod in ("m1", "m2"):
        _post(vllm_rig.targets[pod], {"fault": None})
    vllm_rig.resolves("KvscaleModelDown")
    assert value(vllm_rig, panel("fleet", "Models with no replica serving", policy)) == {(): 0.0}


def test_request_errors_alert_from_vllms_finished_reason_and_resolve(vllm_rig: Rig) -> None:
    policy = from_mapping(SHORT)
    busy = vllm_rig.targets["busy"]
    assert not vllm_rig.firing("KvscaleRequestErrors")
    _post(busy, {"clear": True})  # 2 errors per second from now on
    vllm_rig.fires_for("KvscaleRequestErrors", model_name="tiny-llama")
    # Once the step up from 0 has left the rate window, the panel shows the busy pod's 2 errors per second.
    shown = panel("fleet", "Finished requests by reason", policy)
    vllm_rig.until(lambda: abs(value(vllm_rig, shown).get((("finished_reason", "error"),), 0) - 2.0) < 0.1,
                   "2 errors per second on the panel")
    time.sleep(3)
    assert vllm_rig.firing("KvscaleRequestErrors")
    _post(busy, {"set": {ERROR_SERIES: 0}})  # the errors stop (the counter resets and stays)
    vllm_rig.resolves("KvscaleRequestErrors")


def test_latency_slos_page_for_the_busy_pod_not_the_low_traffic_one(vllm_rig: Rig) -> None:
    # Both pods serve the same latencies, over every (shortened) SLO; only the busy one clears the floor.
    quiet = vllm_rig.prometheus.wait_for('kvscale_vllm_ttft_seconds{pod="quiet", quantile="0.95"} > 0.01')
    assert quiet
    for alert in ("KvscaleTTFTOverSLO", "KvscaleInterTokenLatencyOverSLO", "KvscaleE2ELatencyOverSLO"):
        vllm_rig.fires_for(alert, pod="busy", model_name="tiny-llama")
        assert (("model_name", "tiny-llama"), ("pod", "quiet")) not in vllm_rig.firing(alert)


def test_hpa_health_names_the_broken_hpa_and_mismatch_resolves_when_pods_start(vllm_rig: Rig) -> None:
    policy = from_mapping(SHORT)
    shown = value(vllm_rig, panel("autoscaling", "HPAs that cannot read their metrics", policy))
    assert shown == {(("horizontalpodautoscaler", "other"), ("namespace", "demo")): 1.0}
    vllm_rig.fires_for("KvscaleHPAMetricsUnavailable", horizontalpodautoscaler="other")
    vllm_rig.fires_for("KvscaleHPAReplicasMismatch", horizontalpodautoscaler="other")
    assert vllm_rig.firing("KvscaleHPAReplicasMismatch") == {(("horizontalpodautoscaler", "other"),)}
    short = value(vllm_rig, panel("autoscaling", "HPAs short of desired replicas", policy))
    assert short == {(("horizontalpodautoscaler", "other"), ("namespace", "demo")): 6.0}
    current = 'kube_horizontalpodautoscaler_status_current_replicas{namespace="demo",horizontalpodautoscaler="other"}'
    _post(vllm_rig.targets["ksm"], {"set": {current: 6}})
    vllm_rig.resolves("KvscaleHPAReplicasMismatch")
    assert value(vllm_rig, panel("autoscaling", "HPAs short of desired replicas", policy)) == {(): 0.0}


def test_adapter_errors_staleness_and_absence(vllm_rig: Rig) -> None:
    adapter = vllm_rig.targets["adapter"]
    body = urllib.request.urlopen(f"{adapter}/metrics", timeout=5).read().decode()
    errors = next(line.rpartition(" ")[0] for line in body.splitlines()
                  if line.startswith("kvscale_adapter_requests_total{") and 'code="503"' in line)
    vllm_rig.fires_for("KvscaleAdapterErrors")
    assert not vllm_rig.firing("KvscaleAdapterStale")
    _post(adapter, {"set": {errors: 0, "kvscale_adapter_metric_freshness_seconds": 300}})
    vllm_rig.resolves("KvscaleAdapterErrors")
    vllm_rig.fires_for("KvscaleAdapterStale", source="http://10.0.0.1:9400")
    _post(adapter, {"set": {"kvscale_adapter_metric_freshness_seconds": 1}})
    vllm_rig.resolves("KvscaleAdapterStale")
    # Two HPAs read kvscale metrics: without an adapter they cannot scale.
    assert not vllm_rig.firing("KvscaleAdapterAbsent")
    _post(adapter, {"fault": "http_500"})
    vllm_rig.fires_for("KvscaleAdapterAbsent")
    _post(adapter, {"fault": None})
    vllm_rig.resolves("KvscaleAdapterAbsent")
    assert not vllm_rig.firing("KvscaleExporterNoTargets")  # the exporter watches five pods


# GPU faults: the fake libnvidia-ml under the real exporter (no vLLM target: the exporter watches none).
@pytest.fixture(scope="module")
def gpu_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Rig, Path]]:
    from tests.exporter.gpu.fakenvml import H100X8, compile_fake
    from tests.exporter.gpu.kubelet import FakeKubelet

    tmp = tmp_path_factory.mktemp("faults-gpu")
    procs = Processes()
    kubelet = FakeKubelet()
    prometheus: PrometheusServer | None = None
    try:
        nvml = compile_fake(tmp / "nvml")
        control = tmp / "control"
        control.write_text("")
        rows = H100X8.read_text().splitlines()
        gpus = [i for i, row in enumerate(rows) if row.startswith("gpu|")]
        hot = rows[gpus[4]].split("|")
        hot[7] = "92"  # GPU 4 runs at 92 C
        rows[gpus[4]] = "|".join(hot)
        profile = tmp / "hot.profile"
        profile.write_text("\n".join(rows) + "\n")
        exporter = start_exporter(
            procs, "exporter", {}, "--nvml", "on", "--kubernetes", "off", "--node-name", "gpu-node-1",
            "--pod-resources-socket", kubelet.socket,
            env={"LD_LIBRARY_PATH": str(nvml), "FAKE_NVML_PROFILE": str(profile), "FAKE_NVML_CONTROL": str(control)})
        scrape = [{"job_name": "kvscale-exporter", "honor_labels": True,
                   "static_configs": [{"targets": [_host(exporter)]}]}]
        prometheus = PrometheusServer({"scrape_configs": scrape}, _rules(from_mapping(SHORT), tmp / "rules"))
        prometheus.wait_for("kvscale_gpu_up == 1", timeout=60, min_results=8)
        yield Rig(prometheus, {}), control
    finally:
        if prometheus is not None:
            prometheus.close()
        procs.stop()
        kubelet.stop()
        shutil.rmtree(kubelet.dir, ignore_errors=True)


def _inject(control: Path, line: str) -> None:
    with control.open("a") as f:
        f.write(line + "\n")


def test_xid_panel_sees_a_codes_first_event(gpu_rig: tuple[Rig, Path]) -> None:
    rig, control = gpu_rig
    policy = from_mapping(SHORT)
    stat = panel("gpu", "XID errors in range", policy)
    assert value(rig, stat) == {(): 0.0}
    _inject(control, "xid 2 48 -1")
    rig.fires_for("KvscaleGPUXidErrors", gpu="2")
    # The series is born at 1: the stat shows that 1, not a green 0, and so does the graph.
    rig.until(lambda: value(rig, stat) == {(): 1.0}, "XID stat at 1")
    graph = value(rig, panel("gpu", "XID errors", policy))
    assert graph == {(("gpu", "2"), ("node", "gpu-node-1"), ("xid", "48")): 1.0}


def test_gpu_heat_ecc_and_throttling(gpu_rig: tuple[Rig, Path]) -> None:
    rig, control = gpu_rig
    policy = from_mapping(SHORT)
    rig.fires_for("KvscaleGPUTemperatureHigh", gpu="4")
    assert rig.firing("KvscaleGPUTemperatureHigh") == {(("gpu", "4"),)}
    rig.fires_for("KvscaleExporterNoTargets")  # the exporter is up and watches no vLLM pod

    _inject(control, "ecc 1 1 0 2")  # GPU 1: two uncorrectable errors (volatile)
    rig.fires_for("KvscaleGPUUncorrectableECCErrors", gpu="1")
    ecc = value(rig, panel("gpu", "ECC errors", policy))
    assert ecc[(("error_type", "uncorrected"), ("gpu", "1"), ("node", "gpu-node-1"))] > 0
    assert all(v == 0 for k, v in ecc.items() if ("gpu", "1") not in k)
    rig.resolves("KvscaleGPUUncorrectableECCErrors")  # no new error within the (shortened) window

    _inject(control, "clocks 3 64")  # GPU 3: hardware thermal slowdown
    rig.fires_for("KvscaleGPUClocksThrottled", gpu="3", reason="hw_thermal_slowdown")
    throttled = value(rig, panel("gpu", "Clock throttle reasons active", policy))
    assert [(dict(k)["gpu"], dict(k)["reason"]) for k, v in throttled.items() if v == 1] == [
        ("3", "hw_thermal_slowdown")]
    time.sleep(3)
    assert rig.firing("KvscaleGPUClocksThrottled")
    _inject(control, "clocks 3 0")
    rig.resolves("KvscaleGPUClocksThrottled")
