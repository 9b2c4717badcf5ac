"""Fixtures of the conformance tier: one renderer run per session, exporters over the renders."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from exporter.app import Exporter
from exporter.settings import Settings, build
from exporter.vllm.collector import VllmCollector
from exporter.vllm.series import VllmPolicy
from exporter.vllm.targets import StaticTargets, parse_static
from tests.exporter.helpers import Body, ManualClock, serve_app
from tests.vllm.renderer import Render, render, version, vllm_python
from tests.vllm.scenarios import Scenario, scenarios, simulator_shaped

PRICE = 2.5
"""Dollars per GPU hour given to the exporter, for the cost family."""


class Rendered:
    """Every scenario of the session, rendered once by the vLLM release under test."""

    def __init__(self, vllm_version: str, scenarios: dict[str, Scenario], renders: dict[str, list[Render]]) -> None:
        self.version, self.scenarios, self.renders = vllm_version, scenarios, renders


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rendered]:
    release = version()
    python = vllm_python(release)
    chosen = {s.name: s for s in [*scenarios(release), simulator_shaped()]}
    spec = {"scenarios": [s.spec() for s in chosen.values()]}
    got, renders = render(python, spec, tmp_path_factory.mktemp("vllm") / "renders.json")
    assert got == release
    yield Rendered(got, chosen, renders)


def settings() -> Settings:
    return build([("test", {"listen": "127.0.0.1:1", "interval": 5.0, "window": 60.0, "scrape_timeout": 2.0,
                            "gpu_price_per_hour": PRICE})])


@asynccontextmanager
async def exporter_over(bodies: dict[str, Body], clock: ManualClock) -> AsyncIterator[Exporter]:
    """The real exporter (collector, window, derivations, renderer) over targets serving ``bodies``."""
    s = settings()
    policy = VllmPolicy(window_seconds=s.window, quantiles=tuple(s.quantiles), thresholds=s.policy,
                        gpu_price_per_hour=PRICE, default_gpus_per_pod=1)
    async with AsyncExitStack() as stack:
        specs = [f"ns/{pod}={await stack.enter_async_context(serve_app(body.app()))}/metrics"
                 for pod, body in bodies.items()]
        session = await stack.enter_async_context(aiohttp.ClientSession())
        vllm = VllmCollector(source=StaticTargets([parse_static(x) for x in specs]), session=session,
                             policy=policy, scrape_timeout=s.scrape_timeout, max_body_bytes=s.max_body_bytes)
        yield Exporter(settings=s, vllm=vllm, clock=clock)


REPO = Path(__file__).resolve().parents[2]
