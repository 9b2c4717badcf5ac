"""Series identity: the GPU alerts, evaluated by promtool on the real collector's series, keep firing
without restarting their ``for:`` when a GPU's pod is rescheduled or the kubelet fails for a while.

The collector runs over the fake libnvidia-ml with the gRPC kubelet fake; each phase's series
become ten minutes of promtool input, and the generated rules (alerts/rules) are evaluated on them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import grpc
import yaml

from tests.conftest import REPO
from tests.exporter.gpu.conftest import Cycle
from tests.exporter.gpu.kubelet import FakeKubelet

RULES = REPO / "alerts" / "rules" / "kvscale-gpu-alerts.rules.yml"
FULL = "GPU-0aaaaaaa-1111-4222-8333-444444444444"
LOST = "GPU-0bbbbbbb-1111-4222-8333-444444444444"
MODEL = "NVIDIA H100 80GB HBM3"
# GPU 0 is 97% full; GPU 1 will fall off the bus.
PROFILE = (f"gpu|{FULL}|{MODEL}|85520809984|82955185664|97|612000|61|1980\n"
           f"gpu|{LOST}|{MODEL}|85520809984|1073741824|3|90000|35|1980\n")
SCRAPE = {"job": "kvscale-exporter", "instance": "10.0.0.1:9400"}
PHASE_MINUTES = 10


def selector(name: str, labels: dict[str, str]) -> str:
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted({**labels, **SCRAPE}.items()))
    return f"{name}{{{inner}}}"


def promtool_input(phases: list[Cycle]) -> list[dict[str, str]]:
    """One promtool series per distinct label set, PHASE_MINUTES samples per phase, "_" where absent."""
    keys: dict[str, list[str]] = {}
    for number, cycle in enumerate(phases):
        for name, labels, value in cycle.series:
            if name.startswith("kvscale_gpu_"):
                values = keys.setdefault(selector(name, labels), ["_"] * len(phases))
                values[number] = f"{value:g}"
    def samples(values: list[str]) -> str:
        out, previous = [], "_"
        for v in values:
            if v != "_":
                out.append(f"{v}x{PHASE_MINUTES - 1}")
            else:  # a series the exporter stopped serving is marked stale, as a real scrape does
                out.append(" ".join((["stale"] if previous != "_" else ["_"]) + ["_"] * (PHASE_MINUTES - 1)))
            previous = v
        return " ".join(out)

    return [{"series": key, "values": samples(values)} for key, values in keys.items()]


def expected(alert: str, labels: dict[str, str], description: str) -> dict[str, Any]:
    rule = next(r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if r["alert"] == alert)
    return {"exp_labels": {**labels, **SCRAPE, **rule["labels"]},
            "exp_annotations": {**rule["annotations"], "description": description}}


def test_gpu_alerts_keep_firing_across_re_attribution(nvml_child: Any, kubelet: FakeKubelet, tmp_path: Path,
                                                      promtool: str) -> None:
    profile = tmp_path / "two.profile"
    profile.write_text(PROFILE)
    kubelet.pods = {("llm", "vllm-a-1"): {"vllm": [("nvidia.com/gpu", [FULL])]},
                    ("llm", "vllm-b-1"): {"vllm": [("nvidia.com/gpu", [LOST])]}}
    child = nvml_child(profile=profile, socket=kubelet.socket)
    child.collect()  # discovered while healthy
    child.inject("xid 1 79 -1")
    child.inject("lost 1")
    before = child.collect()
    # The pod on GPU 0 is rescheduled (new name); GPU 1's pod is gone.
    kubelet.pods = {("llm", "vllm-a-2"): {"vllm": [("nvidia.com/gpu", [FULL])]}}
    after = child.collect()
    kubelet.error = grpc.StatusCode.UNAVAILABLE  # then the kubelet socket fails
    failing = child.collect()
    assert [c.success for c in (before, after, failing)] == [True, True, True]
    assert failing.value("kvscale_exporter_collector_success", collector="podresources") == 0.0

    full = {"node": "gpu-node-1", "gpu": "0", "uuid": FULL, "gpu_model": MODEL}
    lost = {"node": "gpu-node-1", "gpu": "1", "uuid": LOST, "gpu_model": MODEL}
    name = f"GPU 0 ({MODEL}, {FULL}) on node gpu-node-1"
    gone = f"GPU 1 ({MODEL}, {LOST}) on node gpu-node-1"

    def memory(holder: str) -> dict[str, Any]:
        return expected("KvscaleGPUMemoryNearFull", full,
                        f"{name}{holder} has 97% of its memory in use (line 95%) for 5m.")

    def gpu_lost(holder: str) -> dict[str, Any]:
        return expected("KvscaleGPULost", lost, f"NVML cannot read {gone}{holder} for 1m.")

    def at(minute: int, alert: str, *alerts: dict[str, Any]) -> dict[str, Any]:
        return {"eval_time": f"{minute}m", "alertname": alert, "exp_alerts": list(alerts)}

    checks = [
        at(5, "KvscaleGPUMemoryNearFull", memory(", used by llm/vllm-a-1")),
        at(5, "KvscaleGPULost", gpu_lost(", used by llm/vllm-b-1")),
        at(5, "KvscaleGPUXidErrors", expected("KvscaleGPUXidErrors", {**lost, "xid": "79"},
                                              f"{gone}, used by llm/vllm-b-1 reported XID 79 in the last 10m.")),
        # Right after each change: a new label set would be pending again (for: 5m and 1m), not firing.
        at(11, "KvscaleGPUMemoryNearFull", memory(", used by llm/vllm-a-2")),
        at(10, "KvscaleGPULost", gpu_lost("")),
        at(21, "KvscaleGPUMemoryNearFull", memory("")),
        at(20, "KvscaleGPULost", gpu_lost("")),
        # The one XID is not a new event when its GPU changes hands, stays down, or loses its pod.
        at(12, "KvscaleGPUXidErrors"),
        at(22, "KvscaleGPUXidErrors"),
    ]
    test_file = tmp_path / "identity.test.yml"
    test_file.write_text(yaml.safe_dump({
        "rule_files": [str(RULES)], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": promtool_input([before, after, failing]),
                   "alert_rule_test": checks}]}, sort_keys=False))
    done = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
