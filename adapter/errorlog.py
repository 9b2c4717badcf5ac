"""Logging what clients and dependencies cause: one line per problem, rate-limited, never a storm.

A flood of malformed requests, refused connections or failed reviews must not become a flood
of log lines (1,000 bad requests once wrote 732 kB of tracebacks in 2.8 s), and what is logged
must not quote what a client sent: callers pass the kind of problem, never header values.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any


class RateLimitedLog:
    """At most ``burst`` lines per ``interval`` seconds; the rest are counted and reported as one line."""

    def __init__(self, logger: logging.Logger, *, burst: int = 10, interval: float = 60.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._burst = burst
        self._interval = interval
        self._monotonic = monotonic
        self._window = -interval
        self._sent = 0
        self.suppressed = 0

    def warning(self, fmt: str, *args: object, exc_info: BaseException | None = None) -> None:
        now = self._monotonic()
        if now - self._window >= self._interval:
            if self.suppressed:
                self._logger.warning("%d similar messages suppressed in the last %.0f s", self.suppressed,
                                     self._interval)
            self._window, self._sent, self.suppressed = now, 0, 0
        if self._sent < self._burst:
            self._sent += 1
            self._logger.warning(fmt, *args, exc_info=exc_info)
        else:
            self.suppressed += 1



def exception_handler(problems: RateLimitedLog) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """A loop exception handler that logs one line per problem, rate-limited (no traceback storms,
    for example past the file-descriptor limit, where the loop reports every failed accept)."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        what = f"{type(exc).__name__}: {exc}" if exc is not None else ""
        trace = exc if exc is not None and not isinstance(exc, OSError) else None  # a bug keeps its traceback
        problems.warning("event loop: %s %s", context.get("message", "error"), what, exc_info=trace)

    return handle
