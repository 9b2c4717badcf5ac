"""Process faults under load: the exporter and the adapter killed with SIGKILL and restarted (as the
kubelet restarts a container) lose at most one collection interval of data beyond their own downtime,
and with two adapter replicas behind a client that tries the other, answers go on through a kill.

Data time is measured, not guessed: the vLLM target's waiting-requests gauge is set to the centiseconds
elapsed since the test began, so every value the adapter answers says when it was read from vLLM.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from simulator.autoscaling import MetricTarget
from simulator.demo_stack import PKI
from simulator.target import TargetState
from tests.chaos.adapters import (
    AdapterProcess,
    FailoverClient,
    adapter_process,
    adapter_ready,
    wait_ready,
    write_pods,
)
from tests.chaos.conftest import status_of, wait_until
from tests.conftest import Processes, start_exporter
from tests.exporter.helpers import SINGLE, vllm_target

pytestmark = pytest.mark.chaos

POD = "vllm-7d9c6-clock"
INTERVAL, REFRESH = 1.0, 0.5  # start_exporter's --interval; the adapters' --refresh-interval
MAX_AGE = 2 * REFRESH  # the adapter's default --max-age for the direct source
SLACK = 0.75  # scheduling on a loaded two-core runner
WAITING = MetricTarget("Pods", "kvscale_vllm_requests_waiting", "AverageValue", 1.0)


@dataclass
class Answers:
    """What the HPA-style client got: (when asked, data time in the answer or None), in order."""

    start: float
    rows: list[tuple[float, float | None]] = field(default_factory=list)
    errors: int = 0

    def between(self, t0: float, t1: float) -> list[tuple[float, float | None]]:
        return [r for r in self.rows if t0 <= r[0] <= t1]

    def largest_data_jump(self, t0: float, t1: float) -> float:
        """The longest stretch of vLLM time no answer covered: consecutive distinct data times."""
        times = sorted({d for _, d in self.between(t0, t1) if d is not None})
        return max(b - a for a, b in itertools.pairwise(times))

    def worst_lag(self) -> float:
        """How old the oldest answered value was when it was answered (a frozen value grows this)."""
        return max(t - self.start - d for t, d in self.rows if d is not None)


@dataclass
class Clocked:
    state: TargetState
    exporter: str
    exporter_args: list[str]
    exporter_proc: subprocess.Popen[bytes]
    pods_file: Path


@pytest.fixture
async def clocked(procs: Processes, tmp_path: Path) -> AsyncIterator[tuple[Clocked, float]]:
    """A vLLM target whose waiting gauge is the clock, and a real exporter over it."""
    async with vllm_target(SINGLE, growth=0.05) as (url, state):
        start = time.monotonic()

        async def tick() -> None:
            while True:
                state.overrides["vllm:num_requests_waiting"] = float(round((time.monotonic() - start) * 100))
                state.changed()
                await asyncio.sleep(0.02)

        ticker = asyncio.create_task(tick())
        base = url.removesuffix("/metrics")
        exporter = await asyncio.to_thread(start_exporter, procs, "exporter", {f"demo/{POD}": base})
        proc = procs.procs[-1]
        args = [str(a) for a in proc.args]  # type: ignore[union-attr]
        try:
            yield Clocked(state, exporter, args, proc, write_pods(tmp_path, [POD])), start
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker


async def _record(client: FailoverClient, answers: Answers, stop: asyncio.Event) -> None:
    while not stop.is_set():
        fetched = await client.fetch([WAITING])
        value = fetched.pod_values.get(WAITING.key, {}).get(POD)
        answers.rows.append((time.monotonic(), None if value is None else value / 100))
        answers.errors += bool(fetched.errors)
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def load(urls: list[str], pki: PKI, start: float) -> AsyncIterator[tuple[Answers, FailoverClient]]:
    """One recorded client and seven more hammering the adapters, all failing over between them."""
    answers, noise, stop = Answers(start), Answers(start), asyncio.Event()
    async with aiohttp.ClientSession() as session:
        client = FailoverClient(urls, session, pki)
        tasks = [asyncio.create_task(_record(client, answers, stop))]
        tasks += [asyncio.create_task(_record(FailoverClient(urls, session, pki), noise, stop)) for _ in range(7)]
        try:
            yield answers, client
        finally:
            stop.set()
            await asyncio.gather(*tasks)


def _restart(kill_and_start: Callable[[], None], ready: Callable[[], bool]) -> float:
    """SIGKILL a process and start it again at once, as the kubelet does; seconds until ``ready``."""
    killed = time.monotonic()
    kill_and_start()
    return wait_until("restarted process ready", ready, 30.0, interval=0.02) - killed


@pytest.fixture
async def adapters(procs: Processes, pki: PKI, clocked: tuple[Clocked, float]) -> list[AdapterProcess]:
    stack, _ = clocked
    made = [adapter_process(procs, pki, f"adapter-{i}", exporter_urls=[stack.exporter], pods_file=stack.pods_file,
                            refresh=REFRESH) for i in range(2)]
    for adapter in made:
        await asyncio.to_thread(wait_ready, pki, adapter.url)
    return made


async def test_exporter_killed_and_restarted_loses_at_most_one_collection(
        clocked: tuple[Clocked, float], adapters: list[AdapterProcess], procs: Processes, pki: PKI) -> None:
    stack, start = clocked
    async with load([adapters[0].url], pki, start) as (answers, _):
        await asyncio.sleep(3)
        steady_until = time.monotonic()
        killed = time.monotonic()
        def kill_and_start() -> None:
            stack.exporter_proc.kill()
            stack.exporter_proc.wait(10)
            procs.start("exporter", stack.exporter_args)

        # Downtime: until the new process has collected once (/metrics answers 503 before that).
        down = await asyncio.to_thread(_restart, kill_and_start, lambda: status_of(stack.exporter + "/metrics") == 200)
        await asyncio.sleep(3)
    steady = answers.largest_data_jump(answers.start, steady_until)
    jump = answers.largest_data_jump(killed - 3, time.monotonic())
    assert steady <= INTERVAL + SLACK
    # Beyond the time no exporter existed, at most one collection interval of vLLM's data is missing.
    assert jump <= down + INTERVAL + SLACK, (jump, down)
    # While it was gone the adapter served nothing older than its max age: no frozen value.
    assert answers.worst_lag() <= INTERVAL + REFRESH + MAX_AGE + SLACK
    assert answers.rows[-1][1] is not None


async def test_adapter_replica_killed_the_other_answers_and_a_restart_loses_at_most_one_refresh(
        clocked: tuple[Clocked, float], adapters: list[AdapterProcess], procs: Processes, pki: PKI) -> None:
    _, start = clocked
    first, second = adapters
    async with load([first.url, second.url], pki, start) as (answers, client):
        await asyncio.sleep(2)
        killed = time.monotonic()
        first.kill()  # the replica the clients ask first
        await asyncio.sleep(3)
        survived = time.monotonic()
        assert client.failovers > 0
    # Every request was answered, by the other replica, with data as fresh as before the kill.
    assert answers.errors == 0 and all(d is not None for _, d in answers.rows)
    assert answers.largest_data_jump(killed - 2, survived) <= INTERVAL + SLACK
    assert answers.worst_lag() <= INTERVAL + REFRESH + SLACK

    # One replica alone, killed and restarted: the gap is its downtime plus at most one refresh.
    first.start()
    await asyncio.to_thread(wait_ready, pki, first.url)
    async with load([second.url], pki, start) as (alone, _):
        await asyncio.sleep(2)
        killed = time.monotonic()

        def kill_and_start() -> None:
            second.kill()
            second.start()

        down = await asyncio.to_thread(_restart, kill_and_start, lambda: adapter_ready(pki, second.url))
        await asyncio.sleep(2)
    jump = alone.largest_data_jump(killed - 2, time.monotonic())
    assert jump <= down + REFRESH + INTERVAL + SLACK, (jump, down)
    assert alone.rows[-1][1] is not None
