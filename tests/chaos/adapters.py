"""The adapter as a process (TLS, front-proxy authentication), and the HPA's client over its replicas."""

from __future__ import annotations

import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml

from simulator.autoscaling.adapter_source import AdapterClient, FetchedMetrics, ScaleTarget
from simulator.autoscaling.spec import MetricTarget
from simulator.demo_stack import DEPLOYMENT, LABELS, NAMESPACE, PKI, pod_list
from tests.conftest import PYTHON, Processes, free_port

SCALE_TARGET = ScaleTarget(NAMESPACE, DEPLOYMENT, dict(LABELS))


def _wait_until(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached after {timeout}s")
        time.sleep(interval)


@dataclass
class AdapterProcess:
    name: str
    port: int
    args: list[str]
    procs: Processes
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = self.procs.start(self.name, self.args)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)


def write_pods(directory: Path, pods: Sequence[str]) -> Path:
    path = directory / "pods.yaml"
    path.write_text(yaml.safe_dump(pod_list(list(pods))))
    return path


def adapter_process(procs: Processes, pki: PKI, name: str, *, exporter_urls: Sequence[str], pods_file: Path,
                    refresh: float = 0.5) -> AdapterProcess:
    """A ``kvscale-adapter`` (direct source) with TLS and front-proxy authentication; started, not waited for."""
    port = free_port()
    args = [PYTHON, "-m", "adapter", "--bind-address", "127.0.0.1", "--secure-port", str(port),
            "--tls-cert-file", str(pki.server_crt), "--tls-private-key-file", str(pki.server_key),
            "--client-ca-file", str(pki.client_ca_file), "--requestheader-client-ca-file", str(pki.proxy_ca_file),
            "--requestheader-allowed-names", "front-proxy-client", "--pods-file", str(pods_file),
            "--refresh-interval", str(refresh), "--log-level", "warning"]
    for url in exporter_urls:
        args += ["--exporter-url", url]
    adapter = AdapterProcess(name, port, args, procs)
    adapter.start()
    return adapter


def adapter_ready(pki: PKI, url: str) -> bool:
    """Whether the adapter at ``url`` answers /readyz with 200 (its source has answered)."""
    context = ssl.create_default_context(cafile=str(pki.server_ca_file))
    try:
        with urllib.request.urlopen(url + "/readyz", context=context, timeout=2) as resp:
            return int(resp.status) == 200
    except OSError:
        return False


def wait_ready(pki: PKI, url: str, timeout: float = 30.0) -> None:
    _wait_until(f"{url}/readyz", lambda: adapter_ready(pki, url), timeout)


class FailoverClient:
    """The HPA's metrics client (front-proxy identity) over several adapter replicas: a replica that
    cannot be reached is skipped for the next, as kube-apiserver's aggregator does across endpoints."""

    def __init__(self, urls: Sequence[str], session: aiohttp.ClientSession, pki: PKI) -> None:
        context = pki.front_proxy_context()
        self.clients = [AdapterClient(u, session=session, ssl_context=context, target=SCALE_TARGET, timeout=2.0)
                        for u in urls]
        self.failovers = 0

    async def fetch(self, metrics: Sequence[MetricTarget]) -> FetchedMetrics:
        result = FetchedMetrics()
        for client in self.clients:
            result = await client.fetch(metrics)
            if not any(_unreachable(e) for e in result.errors.values()):
                return result
            self.failovers += 1
        return result


def _unreachable(error: str) -> bool:
    return any(word in error for word in ("ClientConnectorError", "ServerDisconnectedError", "ClientOSError",
                                          "TimeoutError", "Connection reset"))
