"""A vLLM-format /metrics target: serves a real vLLM exposition whose counters grow.

Counters and histograms grow linearly: ``value = base + increment * growth * t``
(t = seconds since start); gauges stay as recorded. A counter's increment is its
base value; a histogram bucket's increment is the cumulative count of the bucket
*below* it (+Inf keeps the total), so requests served while the target runs are
one bucket slower than the fixture's lifetime distribution. That makes windowed
quantiles (from increments) differ from lifetime ones (from cumulative counts),
which is what a test of "quantiles over the window" needs to tell apart. ``POST /control`` (JSON)
changes behaviour at run time, for tests, demos and benchmarks:
``{"set": {"vllm:num_requests_waiting": 40}}`` overrides every series of a name (a key with labels,
written as in the exposition, overrides that series alone), and
``{"fault": "http_500" | "slow" | "garbage" | "truncated" | "huge" | null}`` injects a fault.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

FAULTS = ("http_500", "slow", "garbage", "truncated", "huge")
_GROWING_TYPES = ("counter", "histogram")
_LE_RE = re.compile(r'le="[^"]*",?')


@dataclass
class Line:
    prefix: str  # everything before the value, ending in a space; "" for a verbatim line
    name: str
    base: float
    increment: float  # per unit of growth*t; 0 for gauges


@dataclass
class TargetState:
    lines: list[Line]
    growth: float
    clock: Callable[[], float] = time.monotonic
    overrides: dict[str, float] = field(default_factory=dict)
    fault: str | None = None
    slow_seconds: float = 5.0
    started: float = 0.0
    cache_seconds: float = 0.1
    """A real engine renders /metrics on its own cores; re-rendering at most every 100 ms
    keeps a node full of simulated engines from stealing the CPU the exporter is measured on."""
    _cached: tuple[float, str] | None = None

    def __post_init__(self) -> None:
        self.started = self.clock()

    def body(self) -> str:
        now = self.clock()
        if self._cached is None or not 0 <= now - self._cached[0] < self.cache_seconds:
            self._cached = (now, render(self, now))
        return self._cached[1]

    def changed(self) -> None:
        self._cached = None


def load_template(text: str) -> list[Line]:
    """Split an exposition into lines whose value can be recomputed."""
    types: dict[str, str] = {}
    out: list[Line] = []
    below: dict[str, float] = {}  # bucket series (labels without le) -> base of the bucket below
    for raw in text.splitlines():
        if raw.startswith("#"):
            parts = raw.split()
            if len(parts) == 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3]
            out.append(Line(raw + "\n", "", 0.0, 0.0))
            continue
        if not raw.strip():
            continue
        head, _, value = raw.rpartition(" ")
        name = head.partition("{")[0]
        base = float(value)
        increment = 0.0
        if types.get(_family_of(name, types)) in _GROWING_TYPES and not name.endswith("_created"):
            increment = base
            if name.endswith("_bucket") and 'le="+Inf"' not in head:
                series = _LE_RE.sub("", head)
                increment = below.get(series, 0.0)
                below[series] = base
        out.append(Line(head + " ", name, base, increment))
    return out


def _family_of(name: str, types: dict[str, str]) -> str:
    if name in types:
        return name
    for suffix in ("_bucket", "_count", "_sum", "_total"):
        if name.endswith(suffix) and name[: -len(suffix)] in types:
            return name[: -len(suffix)]
    return name


def render(state: TargetState, now: float) -> str:
    scale = state.growth * max(0.0, now - state.started)
    parts: list[str] = []
    for line in state.lines:
        if not line.name:
            parts.append(line.prefix)
        elif line.prefix.strip() in state.overrides:  # one series, as the exposition writes it
            parts.append(f"{line.prefix}{state.overrides[line.prefix.strip()]!r}\n")
        elif line.name in state.overrides:
            parts.append(f"{line.prefix}{state.overrides[line.name]!r}\n")
        else:
            parts.append(f"{line.prefix}{line.base + line.increment * scale!r}\n")
    return "".join(parts)


def make_app(state: TargetState) -> web.Application:
    async def metrics(request: web.Request) -> web.StreamResponse:
        fault = state.fault
        if fault == "http_500":
            return web.Response(status=500, text="engine error\n")
        if fault == "slow":
            await asyncio.sleep(state.slow_seconds)
        body = state.body()
        if fault == "garbage":
            return web.Response(body=b"\xff\xfe\x00garbage{{{\n" * 64, content_type="text/plain")
        if fault == "truncated":
            return web.Response(text=body[: len(body) // 2 - 7], content_type="text/plain")
        if fault == "huge":
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await resp.prepare(request)
            chunk = b"# padding " + b"x" * 65_000 + b"\n"
            with contextlib.suppress(ConnectionError):  # the reader is expected to give up
                for _ in range(3200):  # ~200 MB if the reader never stops
                    await resp.write(chunk)
            return resp
        return web.Response(text=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def control(request: web.Request) -> web.Response:
        data: dict[str, Any] = await request.json()
        if "set" in data:
            state.overrides.update({str(k): float(v) for k, v in data["set"].items()})
        if "clear" in data:
            state.overrides.clear()
        if "fault" in data:
            if data["fault"] is not None and data["fault"] not in FAULTS:
                return web.Response(status=400, text=f"fault must be one of {FAULTS}\n")
            state.fault = data["fault"]
        if "restart" in data:  # counters back to the fixture's values, like a restarted vLLM
            state.started = state.clock()
        state.changed()
        return web.json_response({"fault": state.fault, "overrides": state.overrides})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/control", control)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m simulator.target", description=__doc__.splitlines()[0])
    p.add_argument("--listen", default="127.0.0.1:8000", metavar="HOST:PORT")
    p.add_argument("--fixture", required=True, type=Path, help="a vLLM /metrics exposition to serve")
    p.add_argument("--growth", type=float, default=0.05,
                   help="counter growth per second, as a multiple of the fixture's counts (default 0.05)")
    p.add_argument("--cache-seconds", type=float, default=0.1,
                   help="re-render /metrics at most this often (default 0.1)")
    args = p.parse_args(argv)
    state = TargetState(load_template(args.fixture.read_text(encoding="utf-8")), args.growth,
                        cache_seconds=args.cache_seconds)
    host, _, port = args.listen.rpartition(":")
    web.run_app(make_app(state), host=host, port=int(port), print=None, access_log=None)


if __name__ == "__main__":
    main()
