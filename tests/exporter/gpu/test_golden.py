"""The GPU part of /metrics byte for byte: the collector in-process over the fake library.

It also shows how any test loads the fake NVML in-process: ``library_path`` plus
``FAKE_NVML_PROFILE`` (the fake reads it at ``nvmlInit``).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from exporter.collector import CycleContext, health_series, run_collector
from exporter.contract.exposition import parse
from exporter.gpu import build_collector
from exporter.render import SnapshotCollector, new_registry, render
from tests.exporter.gpu.fakenvml import H100X8, NVML_FIXTURES, FakeLibs, profile_uuids
from tests.exporter.gpu.kubelet import FakeKubelet

GOLDEN = NVML_FIXTURES / "golden-h100x8.prom"


def mask_durations(body: str) -> str:
    return re.sub(r"(_duration_seconds\{[^}]*\}) \S+", r"\1 <duration>", body)


async def gpu_exposition(fake_libs: FakeLibs, kubelet: FakeKubelet, control: Path) -> str:
    uuids = profile_uuids(H100X8)
    kubelet.pods = {
        ("llm", "vllm-70b-0"): {"vllm": [("nvidia.com/gpu", uuids[0:4])]},
        ("llm", "vllm-8b-0"): {"vllm": [("nvidia.com/gpu", [uuids[4]])]},
        ("llm", "small-a"): {"vllm": [("nvidia.com/gpu.shared", [f"{uuids[7]}::0"])]},
        ("llm", "small-b"): {"vllm": [("nvidia.com/gpu.shared", [f"{uuids[7]}::1"])]},
    }
    collector = build_collector(mode="on", node_name="gpu-node-1", pod_resources_socket=kubelet.socket,
                                library_path=str(fake_libs.library))
    assert collector is not None
    try:
        await collector.collect(CycleContext(now=time.monotonic()))
        control.write_text("xid 2 79 -1\nxid 2 79 -1\nxid 0 13 -1\nlost 6\n")
        ctx = CycleContext(now=time.monotonic())
        run = await run_collector(collector, ctx, timeout=30)
    finally:
        await collector.close()
    assert ctx.pod_gpus == {("llm", "vllm-70b-0"): 4.0, ("llm", "vllm-8b-0"): 1.0,
                            ("llm", "small-a"): 0.5, ("llm", "small-b"): 0.5}
    snapshot = SnapshotCollector()
    snapshot.update([*run.series, *health_series([run])])
    return mask_durations(render(new_registry(snapshot)).decode())


async def test_golden_gpu_metrics(fake_libs: FakeLibs, kubelet: FakeKubelet, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    control = tmp_path / "control"
    control.write_text("")
    monkeypatch.setenv("FAKE_NVML_PROFILE", str(H100X8))
    monkeypatch.setenv("FAKE_NVML_CONTROL", str(control))
    body = await gpu_exposition(fake_libs, kubelet, control)
    if os.environ.get("KVSCALE_UPDATE_GOLDEN"):
        GOLDEN.write_text(body)
    assert body == GOLDEN.read_text()


def test_golden_gpu_metrics_pass_promtool(promtool: str) -> None:
    text = GOLDEN.read_text().replace("<duration>", "0.001")
    assert parse(text).samples["kvscale_gpu_up"]
    done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
