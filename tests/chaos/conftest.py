"""Chaos helpers: network namespaces with a veth pair, a server that never answers, the simulated replica
under load, the adapter as a process with its PKI, HPA-style clients and alert rules built from a policy.

Everything runs on loopback or in namespaces the tests create and remove; the real components run as
processes (exporter, adapter, Prometheus) so they can be partitioned, killed and restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import random
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from exporter.contract.exposition import Exposition, parse_bytes
from simulator.autoscaling.adapter_source import AdapterClient, FetchedMetrics, ScaleTarget
from simulator.autoscaling.spec import MetricTarget
from simulator.demo_stack import DEPLOYMENT, LABELS, NAMESPACE, PKI, pod_list
from simulator.engine import Fleet, FleetHandle, ScaledClock, load, serve_fleet
from tests.conftest import PYTHON, REPO, Processes, free_port, wait_http

SCALE_TARGET = ScaleTarget(NAMESPACE, DEPLOYMENT, dict(LABELS))
_names = itertools.count()


# -- processes ----------------------------------------------------------------------------------------------
@pytest.fixture
def procs() -> Iterator[Processes]:
    processes = Processes()
    yield processes
    processes.stop()


def scrape(url: str, timeout: float = 5.0) -> Exposition:
    """The exporter's /metrics, parsed."""
    with urllib.request.urlopen(url + "/metrics", timeout=timeout) as resp:
        return parse_bytes(resp.read())


def status_of(url: str, timeout: float = 2.0) -> int:
    """HTTP status of a GET (0 when nothing answers)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def pod_value(exposition: Exposition, family: str, pod: str, **match: str) -> float | None:
    """The one sample of ``family`` for ``pod`` (and ``match``), or None when absent."""
    hits = [v for labels, v in exposition.samples.get(family, [])
            if labels.get("pod") == pod and all(labels.get(k) == m for k, m in match.items())]
    assert len(hits) <= 1, (family, pod, match, hits)
    return hits[0] if hits else None


def pods_with(exposition: Exposition, family: str) -> set[str]:
    return {labels["pod"] for labels, _ in exposition.samples.get(family, []) if labels.get("pod")}


def wait_until(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.1) -> float:
    """Poll ``check`` until true; returns the monotonic time it first was. Fails the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached after {timeout}s")
        time.sleep(interval)


async def async_wait_until(what: str, check: Callable[[], Awaitable[bool]], timeout: float,
                           interval: float = 0.1) -> float:
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached after {timeout}s")
        await asyncio.sleep(interval)


# -- network namespaces -------------------------------------------------------------------------------------
def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=10)
    if done.returncode:
        raise AssertionError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@dataclass
class Netns:
    """A network namespace joined to this one by a veth pair on a private /30.

    ``blackhole()`` takes the namespace's end down: packets to ``ns_ip`` are dropped (no RST, no ICMP),
    as when a node or its link vanishes; ``heal()`` brings it back.
    """

    name: str
    host_if: str
    ns_if: str
    host_ip: str
    ns_ip: str

    @classmethod
    def create(cls) -> Netns:
        tag = f"{os.getpid() % 10000}{next(_names)}"
        third, fourth = random.randrange(0, 256), random.randrange(0, 64) * 4
        ns = cls(f"kvchaos{tag}", f"kvh{tag}", f"kvn{tag}", f"10.231.{third}.{fourth + 1}",
                 f"10.231.{third}.{fourth + 2}")
        _ip("netns", "add", ns.name)
        try:
            _ip("link", "add", ns.host_if, "type", "veth", "peer", "name", ns.ns_if)
            _ip("link", "set", ns.ns_if, "netns", ns.name)
            _ip("addr", "add", f"{ns.host_ip}/30", "dev", ns.host_if)
            _ip("link", "set", ns.host_if, "up")
            ns.exec("addr", "add", f"{ns.ns_ip}/30", "dev", ns.ns_if)
            ns.exec("link", "set", ns.ns_if, "up")
            ns.exec("link", "set", "lo", "up")
        except AssertionError:
            ns.delete()
            raise
        return ns

    def exec(self, *args: str) -> None:
        _ip("netns", "exec", self.name, "ip", *args)

    def command(self, args: Sequence[str]) -> list[str]:
        """``args`` run inside the namespace (``ip netns exec`` execs it: same pid)."""
        return ["ip", "netns", "exec", self.name, *args]

    def blackhole(self) -> None:
        self.exec("link", "set", self.ns_if, "down")

    def heal(self) -> None:
        self.exec("link", "set", self.ns_if, "up")

    def delete(self) -> None:
        # Deleting the namespace destroys its veth end, and with it ours.
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False, timeout=10)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, check=False, timeout=10)


@pytest.fixture
def netns() -> Iterator[Callable[[], Netns]]:
    """Factory of namespaces, each removed at teardown (after the test's processes are stopped)."""
    if subprocess.run(["ip", "-V"], capture_output=True, check=False).returncode:
        pytest.fail("iproute2 is needed: run .ci/setup.sh test")
    made: list[Netns] = []

    def make() -> Netns:
        ns = Netns.create()
        made.append(ns)
        return ns

    yield make
    for ns in made:
        ns.delete()


class SilentServer:
    """Accepts TCP connections, reads what comes, never answers: a hung vLLM frontend."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                conn, _ = self.sock.accept()
                conn.setblocking(False)
                self._conns.append(conn)
                self.accepted += 1
            for conn in self._conns:
                with contextlib.suppress(BlockingIOError, OSError):
                    conn.recv(65536)  # drain, so the client's request is fully sent and then waits

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._conns:
            conn.close()
        self.sock.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


# -- the simulated replica under load -----------------------------------------------------------------------
def small_kv_profile(blocks: int) -> Any:
    """The shipped H100 profile with GPU memory cut so vLLM's count gives about ``blocks`` KV blocks."""
    base = load("llama-3.1-8b-h100")
    block_gib = base.kv_bytes_per_token * base.block_size / 1024**3
    memory = (base.weights_gib + base.activation_gib + (blocks + 0.5) * block_gib) / base.gpu_memory_utilization
    return dataclasses.replace(base, name=f"{base.name}-{blocks}-blocks", gpu_memory_gib=memory)


@dataclass
class Load:
    """Closed-loop clients, each sending one completion after another to ``url``."""

    url: str
    session: aiohttp.ClientSession
    prompt_tokens: int
    max_tokens: int
    clients: int
    pause: float = 0.0
    vary: bool = False
    """Draw each request's output length from [max_tokens / 2, max_tokens], so requests do not finish in step."""
    sent: int = 0
    done: int = 0
    errors: list[str] = field(default_factory=list)
    answered: list[tuple[float, float]] = field(default_factory=list)
    """(monotonic time sent, seconds until the full answer) of each completed request."""
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> Load:
        self._tasks = [asyncio.create_task(self._client(i)) for i in range(self.clients)]
        return self

    async def _client(self, index: int) -> None:
        rng = random.Random(index)
        while True:
            tokens = rng.randint(self.max_tokens // 2, self.max_tokens) if self.vary else self.max_tokens
            body = {"prompt": list(range(self.prompt_tokens)), "max_tokens": tokens}
            self.sent += 1
            sent = time.monotonic()
            try:
                async with self.session.post(self.url + "/v1/completions", json=body) as resp:
                    await resp.read()
                    if resp.status != 200:
                        self.errors.append(f"HTTP {resp.status}")
                self.done += 1
                self.answered.append((sent, time.monotonic() - sent))
            except aiohttp.ClientError as exc:
                self.errors.append(repr(exc))
            await asyncio.sleep(self.pause)

    def latencies(self, answered_after: float = 0.0) -> list[float]:
        """Latencies of the requests answered after ``answered_after`` (monotonic)."""
        return [seconds for sent, seconds in self.answered if sent + seconds >= answered_after]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


@dataclass
class Replica:
    """One simulated vLLM replica (a pod of Deployment ``vllm``) served over HTTP in this event loop."""

    fleet: Fleet
    handle: FleetHandle
    session: aiohttp.ClientSession
    loads: list[Load] = field(default_factory=list)

    @property
    def pod(self) -> str:
        return self.fleet.replicas[0].name

    @property
    def url(self) -> str:
        return self.handle.replica_urls[self.pod]

    def load(self, *, prompt_tokens: int, max_tokens: int, clients: int, pause: float = 0.0,
             vary: bool = False) -> Load:
        load = Load(self.url, self.session, prompt_tokens, max_tokens, clients, pause, vary).start()
        self.loads.append(load)
        return load


@pytest.fixture
async def replica_factory() -> AsyncIterator[Callable[..., Awaitable[Replica]]]:
    """``await replica_factory(profile)``: a warm replica named like the demo's pods, at wall-clock speed."""
    started: list[Replica] = []
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))

    async def start(profile: Any = "llama-3.1-8b-h100") -> Replica:
        fleet = Fleet(profile, replicas=1, clock=ScaledClock(1.0), name_prefix=f"{DEPLOYMENT}-7d9c6")
        replica = Replica(fleet, await serve_fleet(fleet), session)
        started.append(replica)
        return replica

    yield start
    for replica in started:
        for running in replica.loads:
            await running.stop()
    await session.close()
    for replica in started:
        await replica.handle.close()


# -- the adapter as a process -------------------------------------------------------------------------------
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
    wait_until(f"{url}/readyz", lambda: adapter_ready(pki, url), timeout)


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


@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    directory = tmp_path / "pki"
    directory.mkdir()
    return PKI(directory)


# -- alert rules from a policy ------------------------------------------------------------------------------
def build_rules(directory: Path, policy: dict[str, Any]) -> list[Path]:
    """``kvscale-alerts build --policy FILE`` (the command users run); the rule files it wrote."""
    directory.mkdir(parents=True, exist_ok=True)
    policy_file = directory / "policy.yaml"
    policy_file.write_text(yaml.safe_dump({"policy": policy}))
    out = directory / "rules"
    done = subprocess.run([PYTHON, "-m", "alerts", "build", str(out), "--policy", str(policy_file)],
                          capture_output=True, text=True, cwd=REPO, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    return sorted(out.glob("*.rules.yml"))


def prometheus_config(exporter_url: str) -> dict[str, Any]:
    """Prometheus scraping one exporter every second, as the chart's ServiceMonitor does (honor_labels)."""
    return {"scrape_configs": [{"job_name": "kvscale-exporter", "honor_labels": True,
                                "static_configs": [{"targets": [exporter_url.removeprefix("http://")]}]}]}


def wait_exporter(url: str, timeout: float = 20.0) -> None:
    wait_http(url + "/readyz", timeout)
