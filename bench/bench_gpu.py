"""GPU collector benchmark: NVML cost per call, one collect() of 8 GPUs, the exporter's memory.

``.venv/bin/python bench/bench_gpu.py [--quick]`` compiles the test suite's fake
libnvidia-ml (gcc), loads it through ``build_collector(library_path=...)`` and prints
medians. What is measured against the fake library is pynvml's and ctypes' own cost
(the C side returns at once): a real driver adds its ioctl time on top, which needs a
GPU to measure. The process part runs two real exporters side by side over the same 8
simulated vLLM pods (DP=2 fixture), one ``--nvml off`` and one with 8 fake GPUs and a
fake kubelet, and compares their collector durations and resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pynvml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the fake kubelet and process helpers live with the tests

from exporter.collector import CycleContext  # noqa: E402
from exporter.contract.exposition import parse_bytes  # noqa: E402
from exporter.gpu import build_collector  # noqa: E402
from exporter.gpu.collector import GpuCollector  # noqa: E402
from tests.conftest import PYTHON, VLLM_FIXTURES, Processes, free_port, start_target, wait_http  # noqa: E402
from tests.exporter.gpu.fakenvml import H100X8, compile_fake, profile_uuids  # noqa: E402
from tests.exporter.gpu.kubelet import FakeKubelet  # noqa: E402
from tests.exporter.gpu.test_dra import DRIVER, whole_gpus  # noqa: E402
from tests.kube.apiserver import FakeApiServer  # noqa: E402
from tests.kube.client import api_client  # noqa: E402
from tests.kube.objects import make_pod  # noqa: E402

BUDGET_MS = 5.0
"""The whole GPU collection of 8 GPUs with DRA attribution must stay under this."""

TARGETS = 8


def per_call_us(call: Callable[[], Any], *, batches: int, per_batch: int) -> float:
    """Median over batches of the mean cost of one call, in microseconds."""
    samples = []
    for _ in range(batches):
        started = time.perf_counter()
        for _ in range(per_batch):
            call()
        samples.append((time.perf_counter() - started) / per_batch * 1e6)
    return statistics.median(samples)


def event_wait(events: Any) -> bool:
    """As the collector polls: try/except like the real drain loop (no XID pending is the common case)."""
    try:
        pynvml.nvmlEventSetWait_v2(events, 0)
    except pynvml.NVMLError_Timeout:
        return False
    return True


def nvml_calls(quick: bool) -> None:
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    events = pynvml.nvmlEventSetCreate()
    calls: dict[str, Callable[[], Any]] = {
        "nvmlDeviceGetCount": pynvml.nvmlDeviceGetCount,
        "nvmlDeviceGetUtilizationRates": lambda: pynvml.nvmlDeviceGetUtilizationRates(h),
        "nvmlDeviceGetMemoryInfo": lambda: pynvml.nvmlDeviceGetMemoryInfo(h),
        "nvmlDeviceGetPowerUsage": lambda: pynvml.nvmlDeviceGetPowerUsage(h),
        "nvmlDeviceGetTemperature": lambda: pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU),
        "nvmlDeviceGetClockInfo(SM)": lambda: pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM),
        "nvmlEventSetWait_v2 (empty, timeout 0)": lambda: event_wait(events),
    }
    print("NVML call through pynvml over the fake library (median of batch means)")
    for name, call in calls.items():
        us = per_call_us(call, batches=5 if quick else 21, per_batch=200 if quick else 2000)
        print(f"  {name:<42} {us:8.2f} us/call")
    pynvml.nvmlEventSetFree(events)


async def collect_ms(collector: GpuCollector, cycles: int) -> float:
    samples = []
    for _ in range(cycles):
        started = time.perf_counter()
        await collector.collect(CycleContext(now=time.monotonic()))
        samples.append((time.perf_counter() - started) * 1e3)
    return statistics.median(samples)


async def collections(lib: Path, kubelet: FakeKubelet, quick: bool) -> None:
    cycles = 10 if quick else 200
    plain = build_collector(mode="on", node_name="bench", pod_resources_socket=None, library_path=str(lib))
    attributed = build_collector(mode="on", node_name="bench", pod_resources_socket=kubelet.socket)
    assert isinstance(plain, GpuCollector) and isinstance(attributed, GpuCollector)
    nvml = plain._nvml
    started = time.perf_counter()
    for _ in range(cycles):
        nvml.read()
    read_ms = (time.perf_counter() - started) / cycles * 1e3
    a, b = [], []
    for _ in range(5 if quick else 11):  # interleaved: both sides share the machine's noise
        a.append(await collect_ms(plain, max(1, cycles // 10)))
        b.append(await collect_ms(attributed, max(1, cycles // 10)))
    plain_ms, attributed_ms = statistics.median(a), statistics.median(b)
    print(f"One collection of {len(profile_uuids(H100X8))} fake GPUs (medians)")
    print(f"  Nvml.read() in the calling thread            {read_ms:8.3f} ms")
    print(f"  collect(), no pod-resources (worker thread)  {plain_ms:8.3f} ms")
    print(f"  collect() + pod-resources List (8 pods)       {attributed_ms:8.3f} ms"
          f"   ratio {attributed_ms / plain_ms:.2f}x")
    await attributed.close()
    await dra_collection(cycles)
    # plain's NVML session is the same process-wide library: shut it down once, last.
    await plain.close()


async def dra_collection(cycles: int) -> None:
    """8 GPUs claimed through DRA (8 pods), resolved through the fake API server's ResourceSlices."""
    apiserver = FakeApiServer().start()
    kubelet = FakeKubelet()
    try:
        apiserver.store.put(whole_gpus())
        for i in range(8):
            apiserver.store.put(make_pod(f"vllm-{i}", namespace="demo", node="gpu-node-1"))
        kubelet.claims = {("demo", f"vllm-{i}"): {"vllm": [(f"gpu-{i}", DRIVER, "gpu-node-1", f"gpu-{i}", None)]}
                          for i in range(8)}
        dra = build_collector(mode="on", node_name="gpu-node-1", pod_resources_socket=kubelet.socket, dra="on",
                              kube_api=api_client(apiserver))
        assert isinstance(dra, GpuCollector) and dra._dra is not None
        watch: Any = dra._dra
        watch.slices.wait_ready(30)
        watch.pods.wait_ready(30)
        ctx = CycleContext(now=time.monotonic())
        series = await dra.collect(ctx)
        assert sum(s.family == "kvscale_gpu_allocation_info" for s in series) == 8, "DRA devices not resolved"
        ms = await collect_ms(dra, cycles)
        verdict = "within" if ms < BUDGET_MS else "OVER"
        print(f"  collect() + List + DRA (8 claims, slices)     {ms:8.3f} ms   {verdict} the {BUDGET_MS:g} ms budget")
        await dra.close()
    finally:
        kubelet.stop()
        shutil.rmtree(kubelet.dir, ignore_errors=True)
        apiserver.stop()


def exporter_args(port: int, targets: dict[str, str], *extra: str) -> list[str]:
    args = [PYTHON, "-m", "exporter", "--listen", f"127.0.0.1:{port}", "--interval", "1", "--window", "12",
            "--scrape-timeout", "0.5", "--gpu-price-per-hour", "2.5", "--log-level", "warning", *extra]
    for key, url in targets.items():
        args += ["--vllm-target", f"{key}={url}/metrics"]
    return args


def durations(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        samples = parse_bytes(resp.read()).samples
    return {labels["collector"]: v for labels, v in samples.get("kvscale_exporter_collector_duration_seconds", [])}


def processes(lib: Path, kubelet: FakeKubelet, quick: bool) -> None:
    procs = Processes()
    try:
        targets = {f"demo/vllm-{i}": start_target(procs, f"vllm-{i}", VLLM_FIXTURES /
                                                  "v0.33.0-dp2-optional-features.prom") for i in range(TARGETS)}
        uuids = profile_uuids(H100X8)
        kubelet.pods = {("demo", f"vllm-{i}"): {"vllm": [("nvidia.com/gpu", [uuids[i]])]} for i in range(TARGETS)}
        ports = {"off": free_port(), "on": free_port(), "gpus only": free_port()}
        gpu_flags = ("--nvml", "on", "--pod-resources-socket", kubelet.socket, "--node-name", "bench")
        gpu_env = {"LD_LIBRARY_PATH": str(lib.parent), "FAKE_NVML_PROFILE": str(H100X8)}
        off = procs.start("off", exporter_args(ports["off"], targets, "--nvml", "off"))
        on = procs.start("on", exporter_args(ports["on"], targets, *gpu_flags), env=gpu_env)
        procs.start("gpus-only", exporter_args(ports["gpus only"], {}, *gpu_flags), env=gpu_env)
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        for url in urls.values():
            wait_http(url + "/readyz", timeout=60)
        seen: dict[str, list[float]] = {"vllm (nvml off)": [], "vllm (nvml on)": [], "nvml (beside vllm)": [],
                                        "podresources (beside vllm)": [], "nvml (no vllm targets)": []}
        rss: dict[str, list[float]] = {"off": [], "on": []}
        for _ in range(3 if quick else 30):
            time.sleep(1.0)  # one exporter cycle
            d_off, d_on, d_gpus = durations(urls["off"]), durations(urls["on"]), durations(urls["gpus only"])
            seen["vllm (nvml off)"].append(d_off["vllm"])
            seen["vllm (nvml on)"].append(d_on["vllm"])
            seen["nvml (beside vllm)"].append(d_on["nvml"])
            seen["podresources (beside vllm)"].append(d_on["podresources"])
            seen["nvml (no vllm targets)"].append(d_gpus["nvml"])
            for name, proc in (("off", off), ("on", on)):
                rss[name].append(psutil.Process(proc.pid).memory_info().rss / 2**20)
        print(f"Exporter processes over {TARGETS} vLLM pods (DP=2 fixture), side by side, medians per cycle")
        for name, values in seen.items():
            print(f"  collector {name:<28} {statistics.median(values) * 1e3:8.2f} ms")
        print("  (collectors share one event loop: beside vLLM, the GPU collector's wall time includes"
              " waiting for the vLLM parse; the cycle is as long as the vLLM collector either way)")
        off_mb, on_mb = statistics.median(rss["off"]), statistics.median(rss["on"])
        print(f"  resident memory --nvml off                 {off_mb:8.1f} MiB")
        print(f"  resident memory --nvml on (8 GPUs)         {on_mb:8.1f} MiB   +{on_mb - off_mb:.1f} MiB, "
              f"ratio {on_mb / off_mb:.2f}x")
    finally:
        procs.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few iterations: checks the script runs")
    parser.add_argument("--no-processes", action="store_true", help="skip the two-exporter comparison")
    args = parser.parse_args()
    if shutil.which("gcc") is None:
        sys.exit("gcc is needed to build the fake libnvidia-ml")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="kvs-bench-nvml-") as tmp:
        lib = compile_fake(Path(tmp)) / "libnvidia-ml.so.1"
        os.environ["FAKE_NVML_PROFILE"] = str(H100X8)  # read by the fake library at nvmlInit
        kubelet = FakeKubelet()
        kubelet.pods = {("demo", f"vllm-{i}"): {"vllm": [("nvidia.com/gpu", [u])]}
                        for i, u in enumerate(profile_uuids(H100X8))}
        try:
            asyncio.run(collections(lib, kubelet, args.quick))
            pynvml.nvmlInit()
            nvml_calls(args.quick)
            pynvml.nvmlShutdown()
            if not args.no_processes:
                processes(lib, kubelet, args.quick)
        finally:
            kubelet.stop()
            shutil.rmtree(kubelet.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
