"""The simulated vLLM replica the chaos tests load: a small-KV profile, closed-loop clients, the replica."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from simulator.engine import Fleet, FleetHandle, load


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
