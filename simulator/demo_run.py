"""One demo run: start the stack, drive the spike, let the HPA model scale, record, then plot.

Four loops share one compressed clock: arrivals into the fleet's router, exporters following the
fleet's replicas, the HPA syncing every 15 simulated seconds through the adapter, and a sampler
that reads the exporters and Prometheus' alerts for the live view and the timeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from rich.console import Console
from rich.live import Live

from exporter.contract.policy import Policy
from simulator.autoscaling import HPA, Behavior, Decision, HPASpec, MetricTarget, PodState, ScalingRules
from simulator.autoscaling.adapter_source import AdapterClient, FetchedMetrics, ScaleTarget
from simulator.autoscaling.spec import DEFAULT_SCALE_DOWN
from simulator.demo_load import Arrivals, SpikeScenario
from simulator.demo_plot import plot
from simulator.demo_stack import (
    DEPLOYMENT,
    LABELS,
    NAMESPACE,
    PKI,
    POD_PREFIX,
    Clocks,
    ExporterPool,
    Process,
    StackError,
    find_prometheus,
    pod_list,
    prometheus_config,
    scaled_policy,
    start_adapter,
    start_prometheus,
    write_sd,
)
from simulator.demo_summary import AlertSpan, Sample, ScalingEvent, Served, Summary, Timeline, summarize
from simulator.demo_view import ViewState, fleet_sample, pod_rows, render
from simulator.engine import Fleet, Request, ScaledClock, serve_fleet

SCALE_METRIC = MetricTarget("Pods", "kvscale_vllm_saturation_ratio", "AverageValue", 1.0)
SAMPLE_EVERY = 5.0  # simulated seconds between samples of the fleet
POD_NAMES = 64  # the adapter's pod inventory is a file read once: the names the fleet may use


@dataclass(frozen=True)
class DemoConfig:
    duration: float
    speed: float
    profile: str
    replicas: int
    max_replicas: int
    base_rate: float
    spike_rate: float
    cold_start: float | None
    price: float
    out: Path
    prometheus: str | None
    seed: int
    policy: Policy


@dataclass
class DemoResult:
    summary: Summary
    plot: Path
    timeline: Timeline
    notes: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hpa_spec(config: DemoConfig, clocks: Clocks) -> HPASpec:
    down = ScalingRules(DEFAULT_SCALE_DOWN.policies, "Max", config.policy.scale_down_stabilization_seconds)
    return HPASpec(config.replicas, config.max_replicas, [SCALE_METRIC], Behavior(scale_down=down),
                   sync_period=clocks.hpa_sync)


def pod_states(fleet: Fleet, now: float, pull_s: float) -> list[PodState]:
    """The pods the HPA's selector matches: Pending while the image pulls, then Running (Ready once serving)."""
    return [PodState(r.name, ready=r.ready, phase="Pending" if now < r.created_at + pull_s else "Running",
                     deleting=r.terminating) for r in fleet.replicas]


async def _wait(what: str, check: Callable[[], Awaitable[bool]], proc: Process | None, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if proc is not None:
            proc.check()
        if asyncio.get_running_loop().time() > deadline:
            raise StackError(f"{what} did not become ready in {timeout:.0f} s")
        await asyncio.sleep(0.2)


async def _ok(session: aiohttp.ClientSession, url: str, ctx: ssl.SSLContext | None = None) -> bool:
    try:
        async with session.get(url, ssl=ctx if ctx is not None else False,
                               timeout=aiohttp.ClientTimeout(total=2)) as resp:
            return resp.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


class Demo:
    def __init__(self, config: DemoConfig, console: Console, work: Path) -> None:
        self.config, self.console, self.work = config, console, work
        self.clocks = Clocks(config.speed)
        self.scenario = SpikeScenario(config.duration * config.speed, config.base_rate, config.spike_rate)
        self.timeline = Timeline()
        self.notes: list[str] = []
        self.state = ViewState(total=self.scenario.length, speed=config.speed)
        self.procs: list[Process] = []
        self.prom_url: str | None = None
        self.sd_file = work / "exporters.json"
        self._open_alerts: dict[tuple[str, str], tuple[float, float | None]] = {}
        self._live: Live | None = None
        self._alerts_from: float | None = None

    # -- the real parts ---------------------------------------------------------------------
    async def start_stack(self, session: aiohttp.ClientSession) -> tuple[ExporterPool, AdapterClient]:
        c, pki = self.config, PKI(self.work)
        self.console.print(f"[bold]kvscale-demo[/]: {c.profile}, {c.replicas}-{c.max_replicas} replicas, "
                           f"{self.scenario.length / 60:.0f} simulated minutes at {c.speed:g}x "
                           f"(about {c.duration:.0f} s)")
        slots = [free_port() for _ in range(2 * c.max_replicas + 2)]
        pool = ExporterPool(slots, clocks=self.clocks, price_per_gpu_hour=c.price, policy=c.policy)
        pods_file = self.work / "pods.yaml"
        pods_file.write_text(yaml.safe_dump(pod_list([f"{POD_PREFIX}-{i}" for i in range(POD_NAMES)])))
        adapter_port = free_port()
        adapter = start_adapter(pki, port=adapter_port, exporter_urls=pool.urls, pods_file=pods_file,
                                clocks=self.clocks, log_file=c.out / "logs" / "adapter.log")
        self.procs.append(adapter)
        binary = find_prometheus(c.prometheus)
        if binary is None:
            self.notes.append("prometheus not found (bash .ci/setup.sh installs it): ran without alerts")
        else:
            await self._start_prometheus(binary, pki, adapter_port)
        adapter_url = f"https://127.0.0.1:{adapter_port}"
        ctx = ssl.create_default_context(cafile=str(pki.server_ca_file))
        await _wait("kvscale-adapter", lambda: _ok(session, adapter_url + "/healthz", ctx), adapter)
        client = AdapterClient(adapter_url, session=session, ssl_context=pki.front_proxy_context(),
                               target=ScaleTarget(NAMESPACE, DEPLOYMENT, LABELS))
        return pool, client

    async def _start_prometheus(self, binary: str, pki: PKI, adapter_port: int) -> None:
        from alerts.cli import main as alerts_main

        rules, policy_file = self.work / "rules", self.work / "policy.yaml"
        policy_file.write_text(yaml.safe_dump(scaled_policy(self.config.policy, self.config.speed).to_dict()))
        if alerts_main(["build", str(rules), "--policy", str(policy_file)]) != 0:
            raise StackError("kvscale-alerts could not build the rules")
        write_sd(self.sd_file, {})
        port = free_port()
        config = prometheus_config(clocks=self.clocks, rules_dir=rules, sd_file=self.sd_file,
                                   adapter=f"127.0.0.1:{adapter_port}", pki=pki)
        prom_dir = self.work / "prometheus"
        prom_dir.mkdir()
        proc = start_prometheus(binary, config, directory=prom_dir, port=port)
        self.procs.append(proc)
        self.prom_url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as s:
            await _wait("prometheus", lambda: _ok(s, f"{self.prom_url}/-/ready"), proc)

    # -- the loops --------------------------------------------------------------------------
    async def _until(self, clock: ScaledClock, t: float) -> None:
        await asyncio.sleep(max(0.0, (t - clock.now()) / clock.speed))

    async def load_loop(self, fleet: Fleet, arrivals: Arrivals) -> None:
        while True:
            now = fleet.clock.now()
            for req in arrivals.due(now):
                fleet.submit(req)
            self.state.rate = self.scenario.rate(now)
            await asyncio.sleep(0.01)

    async def exporter_loop(self, pool: ExporterPool, urls: Callable[[], dict[str, str]]) -> None:
        while True:
            if await pool.sync(urls()) and self.prom_url:
                write_sd(self.sd_file, pool.live())
            await asyncio.sleep(0.1)

    async def hpa_loop(self, fleet: Fleet, clock: ScaledClock, client: AdapterClient, hpa: HPA) -> None:
        cold = fleet.cold_start_s
        pull_s = cold * fleet.profile.cold_start.image_pull_s / max(fleet.profile.cold_start.total_s, 1e-9)
        k = 0
        while True:
            await self._until(clock, k * hpa.spec.sync_period)
            k += 1
            now = clock.now()
            current = len(fleet.active)
            fetched = await client.fetch(hpa.spec.metrics)
            decision = hpa.reconcile(now, current, pod_states(fleet, now, pull_s), fetched)
            if decision.synced and decision.desired != current:
                before = {r.name for r in fleet.replicas}
                applied = clock.now()  # the adapter round trip took a little simulated time
                fleet.scale_to(decision.desired)
                ready_at = max((r.ready_at for r in fleet.replicas if r.name not in before), default=None)
                self.timeline.events.append(ScalingEvent(applied, current, decision.desired, decision.reason,
                                                         ready_at))
            self.state.decision = _describe(decision, fetched, current)
            self.state.replicas = len(fleet.active)

    async def sample_loop(self, fleet: Fleet, clock: ScaledClock, pool: ExporterPool,
                          session: aiohttp.ClientSession) -> None:
        k = 0
        while True:
            await self._until(clock, k * SAMPLE_EVERY)
            k += 1
            for proc in self.procs:
                proc.check()
            now = clock.now()
            rows: dict[str, dict[str, float]] = {}
            for body in await asyncio.gather(*(_text(session, f"http://{hp}/metrics") for hp in pool.live().values())):
                rows.update(pod_rows(body) if body else {})
            for row in rows.values():
                if "gen tok/s" in row:  # the exporter's rates are per wall second
                    row["gen tok/s"] /= self.config.speed
            sample = fleet_sample(now, len(fleet.active), sum(1 for r in fleet.replicas if r.ready), rows)
            self.timeline.samples.append(sample)
            await self._poll_alerts(session, now)
            self._show(fleet, now, sample, rows)

    async def _poll_alerts(self, session: aiohttp.ClientSession, now: float) -> None:
        if self.prom_url is None:
            return
        if self._alerts_from is None or now < self._alerts_from:
            # Prometheus starts before the exporters exist: its absent() alerts go pending until the first
            # scrapes. Record alerts from two rule evaluations after every target has been scraped up.
            if self._alerts_from is None and await self._all_targets_up(session):
                self._alerts_from = now + 2 * self.clocks.rule_evaluation
            return
        body = await _json(session, f"{self.prom_url}/api/v1/alerts")
        if body is None:
            return
        active: dict[tuple[str, str], str] = {}
        for a in body.get("data", {}).get("alerts", []):
            key = (a["labels"].get("alertname", "?"), a["labels"].get("pod", ""))
            if active.get(key) != "firing":
                active[key] = a.get("state", "pending")
        for key, alert_state in active.items():
            pending_at, fired_at = self._open_alerts.get(key, (now, None))
            if alert_state == "firing" and fired_at is None:
                fired_at = now
            self._open_alerts[key] = (pending_at, fired_at)
        for key in self._open_alerts.keys() - active.keys():
            pending_at, fired_at = self._open_alerts.pop(key)
            self.timeline.alerts.append(AlertSpan(key[0], pending_at, fired_at, now, key[1]))
        self.state.firing = sorted(f"{name}{f' ({pod})' if pod else ''}{'' if fired is not None else ' (pending)'}"
                                   for (name, pod), (_, fired) in self._open_alerts.items())

    async def _all_targets_up(self, session: aiohttp.ClientSession) -> bool:
        body = await _json(session, f"{self.prom_url}/api/v1/targets")
        targets = [] if body is None else body.get("data", {}).get("activeTargets", [])
        jobs = {t.get("labels", {}).get("job") for t in targets}
        return {"kvscale-exporter", "kvscale-adapter"} <= jobs and all(t.get("health") == "up" for t in targets)

    def close_alerts(self) -> None:
        for (name, pod), (pending_at, fired_at) in sorted(self._open_alerts.items()):
            self.timeline.alerts.append(AlertSpan(name, pending_at, fired_at, None, pod))
        self.timeline.alerts.sort(key=lambda a: a.pending_at)

    def _show(self, fleet: Fleet, now: float, sample: Sample, rows: dict[str, dict[str, float]]) -> None:
        st = self.state
        st.t, st.sample, st.pods, st.phase = now, sample, rows, self.scenario.phase(now)
        st.replicas = len(fleet.active)
        st.pod_states = {r.name: "draining" if r.terminating else "serving" if r.ready
                         else f"cold start {max(0.0, r.ready_at - now):.0f}s" for r in fleet.replicas}
        if self._live is not None:
            self._live.update(render(st))
        elif int(now) % 60 < SAMPLE_EVERY:  # not a terminal: one line a simulated minute
            self.console.print(f"t={now:5.0f}s {st.phase:<16} replicas={st.replicas} ready={sample.ready} "
                               f"queue={_f(sample.waiting)} kv={_f(sample.kv_usage)} ttft_p95={_f(sample.ttft_p95)} "
                               f"saturation={_f(sample.saturation)} alerts={','.join(st.firing) or '-'}")

    # -- the run ----------------------------------------------------------------------------
    async def run(self) -> DemoResult:
        c = self.config
        (c.out / "logs").mkdir(parents=True, exist_ok=True)
        tasks: list[asyncio.Task[None]] = []
        async with aiohttp.ClientSession() as session:
            pool, client = await self.start_stack(session)
            clock = ScaledClock(c.speed)
            fleet = Fleet(c.profile, replicas=c.replicas, clock=clock, cold_start_s=c.cold_start, dp=1,
                          name_prefix=POD_PREFIX)
            fleet.finish_hooks.append(self._served)
            handle = await serve_fleet(fleet, host="127.0.0.1")
            self.console.print(f"router (OpenAI API) {handle.router_url}   adapter {client.base_url}"
                               + (f"   prometheus {self.prom_url}" if self.prom_url else ""))
            hpa = HPA(hpa_spec(c, self.clocks))
            live = Live(render(self.state), console=self.console, refresh_per_second=4) \
                if self.console.is_terminal else None
            try:
                with live if live is not None else contextlib.nullcontext():
                    self._live = live
                    tasks = [asyncio.create_task(coro) for coro in (
                        self.load_loop(fleet, Arrivals(self.scenario, c.seed)),
                        self.exporter_loop(pool, handle.metrics_urls),
                        self.hpa_loop(fleet, clock, client, hpa),
                        self.sample_loop(fleet, clock, pool, session))]
                    waiter = asyncio.create_task(self._until(clock, self.scenario.length))
                    done, _ = await asyncio.wait({waiter, *tasks}, return_when=asyncio.FIRST_COMPLETED)
                    for t in done - {waiter}:
                        t.result()  # a loop that died raises here
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self._live = None
                gpu_seconds = fleet.gpu_seconds(min(clock.now(), self.scenario.length))
                await handle.close()
                await pool.close()
        self.close_alerts()
        summary = summarize(self.timeline, duration=self.scenario.length, spike_at=self.scenario.spike_at,
                            threshold=SCALE_METRIC.target, slo=c.policy.ttft_p95_slo_seconds,
                            gpu_seconds=gpu_seconds, price_per_gpu_hour=c.price)
        png = plot(self.timeline, summary, c.out / "demo.png", slo=c.policy.ttft_p95_slo_seconds,
                   kv_target=c.policy.kv_target, kv_alert=c.policy.kv_cache_usage_alert,
                   queue_target=c.policy.queue_target,
                   title=f"kvscale-demo: {c.profile}, spike {c.base_rate:g} -> {c.spike_rate:g} req/s, "
                         f"HPA on saturation (AverageValue 1)")
        return DemoResult(summary, png, self.timeline, self.notes)

    def _served(self, req: Request) -> None:
        if req.first_token is not None:
            self.timeline.served.append(Served(req.first_token, req.first_token - req.arrival,
                                               req.prompt_tokens + req.generated))

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _describe(decision: Decision, fetched: FetchedMetrics, current: int) -> str:
    usage = next((p.usage for p in decision.proposals if p.usage is not None), None)
    errors = "; ".join(fetched.errors.values())
    head = f"{current} -> {decision.desired}: {decision.reason}"
    return head + (f" (saturation avg {usage:.2f})" if usage is not None else "") + (f" [{errors}]" if errors else "")


async def _text(session: aiohttp.ClientSession, url: str) -> str:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
            return await resp.text() if resp.status == 200 else ""
    except (aiohttp.ClientError, TimeoutError):
        return ""


async def _json(session: aiohttp.ClientSession, url: str) -> dict[str, Any] | None:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
            body = await resp.json() if resp.status == 200 else None
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    return body if isinstance(body, dict) else None


async def run(config: DemoConfig, console: Console) -> DemoResult:
    work = Path(tempfile.mkdtemp(prefix="kvscale-demo-"))
    demo = Demo(config, console, work)
    task = asyncio.current_task()
    if task is not None:  # SIGTERM cancels like Ctrl-C: the children (adapter, Prometheus) are stopped
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await demo.run()
    finally:
        demo.stop()
        shutil.rmtree(work, ignore_errors=True)
