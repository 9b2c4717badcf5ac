"""Fixtures of the chaos tests (processes, network namespaces, a silent server, the simulated replica, the
adapter's PKI) and small helpers to read the exporter and build alert rules from a policy.

Everything runs on loopback or in namespaces the tests create and remove; the real components run as
processes (exporter, adapter, Prometheus) so they can be partitioned, killed and restarted. The helpers
behind the fixtures are in network.py, workload.py and adapters.py.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from exporter.contract.exposition import Exposition, parse_bytes
from simulator.demo_stack import DEPLOYMENT, PKI
from simulator.engine import Fleet, ScaledClock, serve_fleet
from tests.chaos.network import Netns, SilentServer
from tests.chaos.workload import Replica
from tests.conftest import PYTHON, REPO, Processes


# -- processes and reading the exporter -------------------------------------------------------------------
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



@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


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
