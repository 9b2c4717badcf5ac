"""One policy file, every command: each changed key lands where it belongs; a bad file is refused alike.

The four commands read the same file through their real entry points: ``kvscale-alerts`` and
``kvscale-dashboards`` through ``main()``, ``kvscale-exporter`` and ``kvscale-adapter`` through
their settings loaders and serving functions (``main()`` would serve until a signal).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from adapter.runner import run as run_adapter
from adapter.settings import load_settings as adapter_settings
from alerts.cli import main as alerts_main
from dashboards.cli import main as dashboards_main
from exporter.app import serve as serve_exporter
from exporter.contract.policy import Policy
from exporter.settings import load_settings as exporter_settings
from exporter.vllm import derive
from tests.adapter.helpers import CUSTOM, PODS, FakeExporter
from tests.conftest import PYTHON, REPO, free_port
from tests.exporter.helpers import SINGLE, vllm_target

# Every key, each changed from its default to a valid value.
CHANGED: dict[str, Any] = {
    "queue_target": 7.0, "kv_target": 0.6, "ttft_p95_slo_seconds": 1.5, "gpu_utilization_target": 0.7,
    "scale_down_stabilization_seconds": 420, "adapter_default_quantile": 0.9, "kv_cache_usage_alert": 0.9,
    "kv_cache_usage_alert_for_seconds": 240, "kv_fragmentation_alert": 0.3, "kv_fragmentation_alert_for_seconds": 900,
    "ttft_alert_for_seconds": 180, "queue_backlog_alert_for_seconds": 1200, "preemptions_per_second_alert": 0.5,
    "preemptions_alert_for_seconds": 360, "admission_rejections_per_second_alert": 0.2,
    "admission_rejections_for_seconds": 540, "target_down_for_seconds": 1320, "gpu_memory_usage_alert": 0.97,
    "gpu_memory_alert_for_seconds": 660, "gpu_lost_for_seconds": 120, "xid_window_seconds": 1800,
    "absent_for_seconds": 780, "collector_failing_for_seconds": 1500, "hpa_maxed_out_for_seconds": 1980,
    "hpa_metrics_unavailable_for_seconds": 1260, "rate_window_seconds": 240, "exporter_selector": 'job="exp-x"',
    "adapter_selector": 'job="adp-x"', "kube_state_metrics_selector": 'job="ksm-x"',
    "hpa_namespace_selector": 'namespace=~"llm-.*"', "vllm_selector": 'job="vllm-x"',
    "runbook_url_base": "https://wiki.example.com/rb",
    "itl_p95_slo_seconds": 0.2, "itl_alert_for_seconds": 420, "e2e_p95_slo_seconds": 45.0, "e2e_alert_for_seconds": 480,
    "slo_min_requests_per_second": 0.5, "latency_slo_severity": "warning", "engine_stalled_for_seconds": 240,
    "engine_stalled_severity": "warning", "queue_far_above_target_factor": 3.0,
    "queue_far_above_target_for_seconds": 1200, "queue_far_above_target_severity": "critical",
    "model_down_for_seconds": 420, "model_down_severity": "warning", "exporter_no_targets_for_seconds": 900,
    "exporter_no_targets_severity": "info", "request_error_ratio_alert": 0.02, "request_errors_for_seconds": 240,
    "request_errors_severity": "warning", "request_abort_ratio_alert": 0.3, "request_aborts_for_seconds": 900,
    "request_aborts_severity": "info", "hpa_replicas_mismatch_for_seconds": 1200,
    "hpa_replicas_mismatch_severity": "critical", "adapter_absent_severity": "warning", "adapter_stale_seconds": 90,
    "adapter_stale_for_seconds": 240, "adapter_error_ratio_alert": 0.1, "adapter_errors_for_seconds": 240,
    "adapter_severity": "critical", "gpu_temperature_alert": 88.0, "gpu_temperature_for_seconds": 240,
    "gpu_ecc_window_seconds": 1200, "gpu_throttle_reasons": "hw_slowdown", "gpu_throttle_for_seconds": 300,
    "gpu_health_severity": "critical", "cluster_label": "k8s_cluster", "grafana_url_base": "https://grafana.example.com",
}


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump({"policy": CHANGED}))  # nested, as in Helm values
    return path


def test_every_key_is_changed() -> None:
    defaults = Policy().to_dict()
    assert set(CHANGED) == set(defaults)
    assert [k for k, v in CHANGED.items() if v == defaults[k]] == []


def _rules(directory: Path) -> dict[str, dict[str, Any]]:
    rules = {}
    for path in directory.glob("*.rules.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.update({r.get("alert") or r["record"]: r for r in group["rules"]})
    return rules


def test_alerts_follow_every_rule_key(tmp_path: Path, policy_file: Path) -> None:
    assert alerts_main(["build", str(tmp_path / "rules"), "--policy", str(policy_file)]) == 0
    rules = _rules(tmp_path / "rules")
    text = "".join(p.read_text() for p in (tmp_path / "rules").glob("*.rules.yml"))
    expected = [  # (alert, what its expression or duration must show)
        ("KvscaleKVCacheNearlyFull", 'kvscale_vllm_kv_cache_usage_ratio{job="exp-x"} > 0.9', "4m"),
        ("KvscaleKVFragmentationHigh", "> 0.3", "15m"),
        ("KvscaleTTFTOverSLO", "> 1.5", "3m"),
        ("KvscaleQueueBacklogGrowing", "> 7\n", "20m"),
        ("KvscalePreemptions", "> 0.5", "6m"),
        ("KvscaleAdmissionRejections", "> 0.2", "9m"),
        ("KvscaleVLLMTargetDown", "== 0", "22m"),
        ("KvscaleGPUMemoryNearFull", "> 0.97", "11m"),
        ("KvscaleGPULost", "== 0", "2m"),
        ("KvscaleGPUXidErrors", "[30m]", "0s"),
        ("KvscaleExporterAbsent", 'absent(up{job="exp-x"} == 1)', "13m"),
        ("KvscaleAdapterAbsent", 'unless on (k8s_cluster)\ncount by (k8s_cluster) (up{job="adp-x"} == 1)', "13m"),
        ("KvscaleExporterCollectorFailing", "== 0", "25m"),
        ("KvscaleHPAMaxedOutSaturated", '{job="ksm-x", namespace=~"llm-.*"}', "33m"),
        ("KvscaleHPAMetricsUnavailable", '{job="ksm-x", namespace=~"llm-.*"', "21m"),
    ]
    for alert, expr, duration in expected:
        assert expr in rules[alert]["expr"], alert
        assert rules[alert].get("for", "0s") == duration, alert
        assert rules[alert]["annotations"]["runbook_url"] == f"https://wiki.example.com/rb#{alert.lower()}"
    assert "deriv(namespace_model:kvscale_vllm_requests_waiting:sum[4m])" in rules["KvscaleQueueBacklogGrowing"]["expr"]
    assert 'job="vllm-x"' in text and "[4m]" in text  # vLLM histogram rules: selector and rate window


def _steps(panel: dict[str, Any]) -> list[float | None]:
    return [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]


def test_dashboards_follow_lines_selectors_and_links(tmp_path: Path, policy_file: Path) -> None:
    assert dashboards_main(["build", str(tmp_path / "json"), "--policy", str(policy_file)]) == 0
    fleet = json.loads((tmp_path / "json" / "fleet.json").read_text())
    kv = next(p for p in fleet["panels"] if p["title"] == "KV cache usage per pod")
    assert _steps(kv) == [None, 0.6, 0.9]
    autoscaling = (tmp_path / "json" / "autoscaling.json").read_text()
    assert 'job=\\"ksm-x\\"' in autoscaling and "[420s]" in autoscaling
    assert "https://wiki.example.com/rb#kvscalehpametricsunavailable" in autoscaling


async def test_exporter_saturation_follows_the_targets(policy_file: Path) -> None:
    async with vllm_target(SINGLE) as (url, _):
        listen = f"127.0.0.1:{free_port()}"
        settings = exporter_settings(["--policy", str(policy_file), "--listen", listen, "--vllm-target",
                                      f"ns/p={url}", "--interval", "0.5", "--window", "5", "--scrape-timeout",
                                      "0.3", "--nvml", "off"], {})
        task = asyncio.create_task(serve_exporter(settings))
        try:
            body = ""
            async with aiohttp.ClientSession() as session:
                for _ in range(100):
                    with contextlib.suppress(aiohttp.ClientError):
                        async with session.get(f"http://{listen}/metrics") as resp:
                            body = await resp.text()
                    if "kvscale_vllm_saturation_ratio{" in body:
                        break
                    await asyncio.sleep(0.1)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    values = {(s.name, s.labels.get("quantile", "")): s.value
              for family in text_string_to_metric_families(body) for s in family.samples}
    kv, waiting = values[("kvscale_vllm_kv_cache_usage_ratio", "")], values[("kvscale_vllm_requests_waiting", "")]
    ttft = values.get(("kvscale_vllm_ttft_seconds", "0.95"))
    expected = derive.saturation(kv_usage=kv, waiting=waiting, ttft_p95=ttft, kv_target=0.6, queue_target=7.0,
                                 ttft_slo=1.5)
    default = derive.saturation(kv_usage=kv, waiting=waiting, ttft_p95=ttft, kv_target=0.75, queue_target=5.0,
                                ttft_slo=0.8)
    assert expected is not None and expected != default
    assert values[("kvscale_vllm_saturation_ratio", "")] == pytest.approx(expected)


async def test_adapter_serves_the_policy_quantile_by_default(policy_file: Path) -> None:
    exporter = FakeExporter()  # ttft of vllm-7d9c6-abcde: p90 0.4, p95 0.75
    await exporter.server.start_server()
    port = free_port()
    settings = adapter_settings(["--policy", str(policy_file), "--insecure-http", "--bind-address", "127.0.0.1",
                                 "--secure-port", str(port), "--exporter-url", exporter.url, "--pods-file",
                                 str(PODS), "--refresh-interval", "0.2"], {})
    assert settings.default_quantile == "0.9"
    task = asyncio.create_task(run_adapter(settings))
    url = f"http://127.0.0.1:{port}{CUSTOM}/v1beta2/namespaces/llm/pods/vllm-7d9c6-abcde/kvscale_vllm_ttft_seconds"
    items: list[dict[str, Any]] = []
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(url) as resp:
                        if resp.status == 200:
                            items = (await resp.json())["items"]
                            break
                await asyncio.sleep(0.1)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await exporter.server.close()
    assert [i["value"] for i in items] == ["400m"]  # the 0.9 series; the built-in default would give 750m


BAD = [("unknown key", {"kv_targett": 0.5}, "unknown key 'kv_targett' (did you mean 'kv_target'?)"),
       ("bad value", {"kv_target": 1.5}, "kv_target: must be <= 1, got 1.5")]
COMMANDS = [("exporter", ["--listen", "127.0.0.1:0", "--nvml", "off", "--kubernetes", "off"]),
            ("adapter", ["--insecure-http", "--exporter-url", "http://127.0.0.1:9", "--pods-file", str(PODS)]),
            ("alerts", ["build", "OUT"]),
            ("dashboards", ["build", "OUT"])]


@pytest.mark.parametrize(("case", "content", "message"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_file_is_refused_by_every_command_with_the_same_message(tmp_path: Path, case: str,
                                                                      content: dict[str, Any], message: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(content))
    for package, args in COMMANDS:
        out = tmp_path / package
        argv = [a.replace("OUT", str(out)) for a in args]
        result = subprocess.run([PYTHON, "-m", package, *argv, "--policy", str(bad)], cwd=REPO, check=False,
                                capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert result.returncode == 2, (package, result.stderr)
        assert f"kvscale-{package}: error: policy file {bad}: {message}" in result.stderr, (package, result.stderr)
        assert "Traceback" not in result.stderr
        assert not out.exists()
