"""The real parts the demo runs beside the simulated fleet, on loopback, on one compressed clock.

- one ``kvscale-exporter`` per replica (``exporter.app.serve``, static target), as a node's
  DaemonSet pod beside its one GPU pod: started when the replica appears, stopped when it goes;
- ``kvscale-adapter`` as a process (``direct`` source over every exporter slot, TLS from a
  throwaway trustme CA, front-proxy and client-certificate authentication);
- Debian's ``prometheus`` with the rules ``kvscale-alerts`` generates, scraping the exporters
  (file service discovery, rewritten as they come and go) and the adapter over mutual TLS.
Every period is a simulated duration divided by the speed (``Clocks``); alert ``for:`` durations
and rate windows go through the policy the same way, per-second thresholds the other way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import trustme
import yaml

from exporter.app import serve
from exporter.contract.policy import Policy, describe
from exporter.settings import build

log = logging.getLogger(__name__)
NAMESPACE = "demo"
DEPLOYMENT = "vllm"
POD_PREFIX = "vllm-7d9c6"  # Deployment vllm, ReplicaSet vllm-7d9c6: the adapter maps pods to it by name
LABELS = {"app": "vllm"}
_RATE_UNITS = ("events per second", "requests per second")
_SIM_TIME_FIELDS = ("ttft_p95_slo_seconds", "scale_down_stabilization_seconds")  # measured in simulated time


class StackError(RuntimeError):
    """A real part of the demo could not start."""


@dataclass(frozen=True)
class Clocks:
    """Every loop's period in simulated seconds; ``wall`` divides by the speed."""

    speed: float
    exporter_interval: float = 5.0
    window: float = 60.0
    adapter_refresh: float = 5.0
    hpa_sync: float = 15.0
    scrape: float = 15.0
    rule_evaluation: float = 15.0

    def wall(self, sim_seconds: float) -> float:
        return sim_seconds / self.speed


def scaled_policy(policy: Policy, speed: float) -> Policy:
    """The policy the wall-clock parts see: alert durations and windows / speed, rate lines * speed."""
    changes: dict[str, float | int] = {}
    for name, unit, _default, _doc in describe():
        value = getattr(policy, name)
        if unit == "seconds" and name not in _SIM_TIME_FIELDS and isinstance(value, int):
            changes[name] = max(1, round(value / speed))
        elif unit in _RATE_UNITS:
            changes[name] = value * speed
    return policy.replace(changes, f"kvscale-demo at {speed:g}x")


def find_prometheus(explicit: str | None = None) -> str | None:
    """``--prometheus``, else the one ``bash .ci/setup.sh`` unpacked beside the checkout, else PATH."""
    if explicit:
        return explicit
    local = Path(__file__).resolve().parent.parent / ".tools" / "prometheus" / "usr" / "bin" / "prometheus"
    return str(local) if local.exists() else shutil.which("prometheus")


class PKI:
    """A throwaway CA for the adapter's serving certificate, the front proxy's CA and a client CA."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.server_ca, self.proxy_ca, self.client_ca = trustme.CA(), trustme.CA(), trustme.CA()
        self.server_crt, self.server_key = self._issue(self.server_ca, "server", "127.0.0.1")
        self.proxy_crt, self.proxy_key = self._issue(self.proxy_ca, "front-proxy", cn="front-proxy-client")
        self.prom_crt, self.prom_key = self._issue(self.client_ca, "prometheus", cn="prometheus")
        self.server_ca_file = self._pem("server-ca.pem", self.server_ca)
        self.proxy_ca_file = self._pem("front-proxy-ca.pem", self.proxy_ca)
        self.client_ca_file = self._pem("client-ca.pem", self.client_ca)

    def _pem(self, name: str, ca: trustme.CA) -> Path:
        path = self.dir / name
        path.write_bytes(ca.cert_pem.bytes())
        return path

    def _issue(self, ca: trustme.CA, name: str, *hosts: str, cn: str | None = None) -> tuple[Path, Path]:
        cert = ca.issue_cert(*hosts, common_name=cn) if cn else ca.issue_cert(*hosts)
        crt, key = self.dir / f"{name}.crt", self.dir / f"{name}.key"
        crt.write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
        key.write_bytes(cert.private_key_pem.bytes())
        key.chmod(0o600)
        return crt, key

    def front_proxy_context(self) -> ssl.SSLContext:
        """What kube-apiserver presents when it forwards the HPA's request to the adapter."""
        ctx = ssl.create_default_context(cafile=str(self.server_ca_file))
        ctx.load_cert_chain(str(self.proxy_crt), str(self.proxy_key))
        return ctx


def pod_list(names: Sequence[str]) -> dict[str, object]:
    """The adapter's pod inventory (a v1 PodList): the names the fleet will use, owned by the ReplicaSet."""
    owner: dict[str, object] = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": POD_PREFIX,
                                "controller": True, "uid": "demo"}
    labels = {**LABELS, "pod-template-hash": "7d9c6"}
    return {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": n, "namespace": NAMESPACE, "labels": labels,
                      "ownerReferences": [owner]},
         "status": {"phase": "Running"}} for n in names]}


class Process:
    """A child process with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: Sequence[str], log_file: Path) -> None:
        self.name, self.log_file = name, log_file
        self._out = log_file.open("wb")
        self.proc = subprocess.Popen(list(argv), stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def check(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log_file.read_text(errors="replace")[-2000:]
            raise StackError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._out.close()


def start_adapter(pki: PKI, *, port: int, exporter_urls: Sequence[str], pods_file: Path, clocks: Clocks,
                  log_file: Path) -> Process:
    argv = [sys.executable, "-m", "adapter", "--bind-address", "127.0.0.1", "--secure-port", str(port),
            "--tls-cert-file", str(pki.server_crt), "--tls-private-key-file", str(pki.server_key),
            "--client-ca-file", str(pki.client_ca_file), "--requestheader-client-ca-file", str(pki.proxy_ca_file),
            "--requestheader-allowed-names", "front-proxy-client", "--pods-file", str(pods_file),
            "--refresh-interval", f"{clocks.wall(clocks.adapter_refresh):.3f}",
            "--window-seconds", str(int(clocks.window)), "--log-level", "warning"]
    for url in exporter_urls:
        argv += ["--exporter-url", url]
    return Process("kvscale-adapter", argv, log_file)


def prometheus_config(*, clocks: Clocks, rules_dir: Path, sd_file: Path, adapter: str, pki: PKI) -> dict[str, object]:
    scrape = clocks.wall(clocks.scrape)
    timeout = min(scrape * 0.8, 10.0)
    return {
        "global": {"scrape_interval": f"{round(scrape * 1000)}ms", "scrape_timeout": f"{round(timeout * 1000)}ms",
                   "evaluation_interval": f"{round(clocks.wall(clocks.rule_evaluation) * 1000)}ms"},
        "rule_files": [str(rules_dir / "*.rules.yml")],
        "scrape_configs": [
            {"job_name": "kvscale-exporter", "file_sd_configs": [{"files": [str(sd_file)], "refresh_interval": "5s"}]},
            {"job_name": "kvscale-adapter", "scheme": "https",
             "tls_config": {"ca_file": str(pki.server_ca_file), "cert_file": str(pki.prom_crt),
                            "key_file": str(pki.prom_key)},
             "static_configs": [{"targets": [adapter]}]},
        ]}


def write_sd(path: Path, targets: Mapping[str, str]) -> None:
    """File service discovery for Prometheus: one group per exporter (host:port), written atomically."""
    groups = [{"targets": [hostport], "labels": {"node": f"node-{pod}"}} for pod, hostport in sorted(targets.items())]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(groups), encoding="utf-8")
    tmp.replace(path)


def start_prometheus(binary: str, config: Mapping[str, object], *, directory: Path, port: int) -> Process:
    cfg = directory / "prometheus.yml"
    cfg.write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
    return Process("prometheus", [binary, f"--config.file={cfg}", f"--storage.tsdb.path={directory / 'data'}",
                                  f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                   directory / "prometheus.log")


class ExporterPool:
    """One in-process exporter per replica, on ports fixed up front (the adapter's --exporter-url list)."""

    def __init__(self, ports: Sequence[int], *, clocks: Clocks, price_per_gpu_hour: float, policy: Policy) -> None:
        self.ports = list(ports)
        self._clocks, self._price, self._policy = clocks, price_per_gpu_hour, policy
        self._by_pod: dict[str, tuple[int, str, asyncio.Task[None]]] = {}

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.ports]

    def live(self) -> dict[str, str]:
        """Pod -> host:port of its exporter."""
        return {pod: f"127.0.0.1:{port}" for pod, (port, _, _) in self._by_pod.items()}

    async def sync(self, targets: Mapping[str, str]) -> bool:
        """Follow the fleet: ``targets`` maps each live replica to its vLLM /metrics URL. True if changed."""
        changed = False
        for pod in [p for p, (_, url, _) in self._by_pod.items() if targets.get(p) != url]:
            await self._stop(pod)
            changed = True
        free = [p for p in self.ports if p not in {port for port, _, _ in self._by_pod.values()}]
        for pod, url in sorted(targets.items()):
            if pod in self._by_pod:
                continue
            if not free:
                log.warning("no exporter slot left for %s: it is not observed", pod)
                continue
            port = free.pop(0)
            await self._start(pod, url, port)
            changed = True
        return changed

    async def _start(self, pod: str, url: str, port: int) -> None:
        c = self._clocks
        interval = c.wall(c.exporter_interval)
        # The exporter divides by wall seconds: its per-second rates read speed times the simulated ones,
        # so the GPU price goes in speed times too and its cost per 1M tokens comes out in simulated terms.
        settings = build([("kvscale-demo", {
            "listen": f"127.0.0.1:{port}", "vllm_target": [f"{NAMESPACE}/{pod}={url}"], "interval": interval,
            "window": c.wall(c.window), "scrape_timeout": interval * 0.8, "nvml": "off", "kubernetes": "off",
            "gpu_price_per_hour": self._price * c.speed, "log_level": "warning", "policy": self._policy})])
        started = asyncio.Event()
        task = asyncio.create_task(serve(settings, started=started), name=f"exporter-{pod}")
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            waiter.cancel()
            raise StackError(f"exporter for {pod} did not start: {task.exception()!r}")
        self._by_pod[pod] = (port, url, task)

    async def _stop(self, pod: str) -> None:
        _, _, task = self._by_pod.pop(pod)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    async def close(self) -> None:
        for pod in list(self._by_pod):
            await self._stop(pod)
