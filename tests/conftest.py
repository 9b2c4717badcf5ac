"""Shared test helpers: paths, free ports, and a real Debian Prometheus server."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
VLLM_FIXTURES = FIXTURES / "vllm"
TOOLS = REPO / ".tools" / "prometheus" / "usr" / "bin"


def tool_path(name: str) -> str:
    """A binary from .tools (installed by .ci/setup.sh) or PATH; a missing tool fails the test."""
    local = TOOLS / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run .ci/setup.sh test")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class PrometheusServer:
    """A real ``prometheus`` process on loopback with a config written by the test."""

    def __init__(self, config: dict[str, Any], rule_files: list[Path] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="kvscale-prom-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = dict(config)
        config.setdefault("global", {"scrape_interval": "1s", "evaluation_interval": "1s"})
        if rule_files:
            config["rule_files"] = [str(p) for p in rule_files]
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.proc = subprocess.Popen(
            [tool_path("prometheus"), f"--config.file={self.dir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.dir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "stderr.log", "wb"),  # noqa: SIM115
        )
        wait_http(f"{self.url}/-/ready")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; raises on a PromQL error, returns the result vector."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"PromQL {expr!r} failed: {exc.read().decode()}") from exc
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(self, expr: str, timeout: float = 30.0, min_results: int = 1) -> list[dict[str, Any]]:
        """Poll until ``expr`` returns at least ``min_results`` series."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if len(result) >= min_results:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"no data for {expr!r} after {timeout}s")
            time.sleep(0.5)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def promtool() -> str:
    return tool_path("promtool")


@pytest.fixture
def prometheus_factory() -> Iterator[Any]:
    servers: list[PrometheusServer] = []

    def start(config: dict[str, Any], rule_files: list[Path] | None = None) -> PrometheusServer:
        server = PrometheusServer(config, rule_files)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def apiserver() -> Iterator[Any]:
    """A started fake Kubernetes API server (tests.kube.apiserver.FakeApiServer), stopped at teardown."""
    from tests.kube.apiserver import FakeApiServer

    server = FakeApiServer().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # Loopback traffic must never go through an HTTP proxy from the environment.
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    os.environ.setdefault("KVSCALE_TEST", "1")


class Processes:
    """Background processes of a test, stopped (and their logs kept) at teardown."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.dir = Path(tempfile.mkdtemp(prefix="kvscale-procs-"))

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.dir / f"{name}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                env={**os.environ, **(env or {})})
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.dir / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else "python3"


def start_target(procs: Processes, name: str, fixture: Path, *, growth: float = 0.05) -> str:
    """A simulated vLLM engine serving ``fixture``; its base URL once it answers."""
    port = free_port()
    procs.start(name, [PYTHON, "-m", "simulator.target", "--listen", f"127.0.0.1:{port}",
                       "--fixture", str(fixture), "--growth", str(growth)])
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/metrics")
    return url


def start_exporter(procs: Processes, name: str, targets: dict[str, str], *extra: str,
                   env: dict[str, str] | None = None) -> str:
    """A real exporter process over ``targets`` ("namespace/pod" -> base URL); its base URL once ready.

    ``--nvml off`` unless ``extra`` says otherwise (a later flag wins)."""
    port = free_port()
    args = [PYTHON, "-m", "exporter", "--listen", f"127.0.0.1:{port}", "--nvml", "off",
            "--interval", "1", "--window", "30", "--scrape-timeout", "0.5"]
    for key, url in targets.items():
        args += ["--vllm-target", f"{key}={url}/metrics"]
    procs.start(name, [*args, *extra], env=env)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/readyz")
    return url


class Stack:
    """Simulated vLLM pods and GPUs, a real exporter over them, and a real Prometheus scraping all."""

    node = "gpu-node-1"

    def __init__(self, procs: Processes, prometheus: PrometheusServer, exporter_url: str,
                 targets: dict[str, str]) -> None:
        self.procs = procs
        self.prometheus = prometheus
        self.exporter_url = exporter_url
        self.targets = targets


def _host(url: str) -> str:
    return url.removeprefix("http://")


@pytest.fixture(scope="session")
def scraped_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # The GPU half runs for real too: pynvml over the fake libnvidia-ml (8 H100s, one lost, one
    # XID event) and a fake kubelet attributing GPUs 0-1 to vllm-a and 2 to vllm-b.
    from tests.exporter.gpu.fakenvml import H100X8, compile_fake, profile_uuids
    from tests.exporter.gpu.kubelet import FakeKubelet

    procs = Processes()
    prometheus: PrometheusServer | None = None
    kubelet = FakeKubelet()
    try:
        nvml_dir = compile_fake(tmp_path_factory.mktemp("nvml"))
        control = nvml_dir / "control"
        control.write_text("lost 7\nxid 5 79 -1\n")
        uuids = profile_uuids(H100X8)
        kubelet.pods = {("demo", "vllm-a"): {"vllm": [("nvidia.com/gpu", uuids[0:2])]},
                        ("demo", "vllm-b"): {"vllm": [("nvidia.com/gpu", uuids[2:3])]}}
        targets = {
            "vllm-a": start_target(procs, "vllm-a", VLLM_FIXTURES / "v0.33.0-dp2-optional-features.prom"),
            "vllm-b": start_target(procs, "vllm-b", VLLM_FIXTURES / "v0.33.0-single-engine.prom"),
        }
        exporter_url = start_exporter(
            procs, "exporter", {f"demo/{pod}": url for pod, url in targets.items()},
            "--gpu-price-per-hour", "2.5", "--nvml", "on", "--node-name", Stack.node,
            "--pod-resources-socket", kubelet.socket,
            env={"LD_LIBRARY_PATH": str(nvml_dir), "FAKE_NVML_PROFILE": str(H100X8),
                 "FAKE_NVML_CONTROL": str(control)})
        scrape = [
            {"job_name": "kvscale-exporter", "honor_labels": True,
             "static_configs": [{"targets": [_host(exporter_url)]}]},
            {"job_name": "vllm", "static_configs": [
                {"targets": [_host(url)], "labels": {"namespace": "demo", "pod": pod}}
                for pod, url in targets.items()]},
        ]
        ksm = FIXTURES / "kube-state-metrics.prom"
        if ksm.exists():
            ksm_url = start_static(procs, "kube-state-metrics", ksm)
            scrape.append({"job_name": "kube-state-metrics", "honor_labels": True,
                           "static_configs": [{"targets": [_host(ksm_url)]}]})
        rules = sorted((REPO / "alerts" / "rules").glob("*.rules.yml"))
        prometheus = PrometheusServer({"scrape_configs": scrape}, rules)
        prometheus.wait_for("kvscale_vllm_ttft_seconds", timeout=60, min_results=8)
        prometheus.wait_for('up{job="vllm"} == 1', timeout=60, min_results=len(targets))
        prometheus.wait_for('kvscale_gpu_allocation_info', timeout=60, min_results=3)
        yield Stack(procs, prometheus, exporter_url, targets)
    finally:
        if prometheus is not None:
            prometheus.close()
        procs.stop()
        kubelet.stop()
        shutil.rmtree(kubelet.dir, ignore_errors=True)


def start_static(procs: Processes, name: str, path: Path) -> str:
    """Serve a static exposition file (growth 0: values exactly as written)."""
    return start_target(procs, name, path, growth=0.0)
