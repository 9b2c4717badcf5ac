"""Logging what clients, dependencies and the event loop cause: bounded, never a storm.

A flood of malformed requests, refused connections or failed reviews must not become a
flood of log lines (1,000 bad requests once wrote 732 kB of tracebacks in 2.8 s), and past
the file-descriptor limit asyncio reports every failed ``accept()`` with a traceback,
thousands a second. What is logged must not quote what a client sent: callers pass the
kind of problem, never header values.

- :class:`RateLimitedLog`: at most ``burst`` lines per interval, the rest counted in one line;
- :class:`QuietExceptionHandler`: the event loop's exception handler, one line per kind of
  error and interval, the first of each kind with its traceback.

The exporter and the adapter both use these.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

PROBLEM_LINES = 10  # lines a problem log writes per interval; the rest are counted in one line
PROBLEM_INTERVAL = 60.0  # seconds
LOOP_ERROR_INTERVAL = 10.0  # seconds between two lines of one kind of event-loop error
# Kinds of loop error remembered at once: a message naming an object is a new kind each time, and the
# table must not grow with them; past this, the expired kinds are forgotten, then the rest share one.
MAX_KINDS = 64


class RateLimitedLog:
    """At most ``burst`` lines per ``interval`` seconds; the rest are counted and reported as one line."""

    def __init__(self, logger: logging.Logger, *, burst: int = PROBLEM_LINES, interval: float = PROBLEM_INTERVAL,
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


class QuietExceptionHandler:
    """An asyncio exception handler logging each kind of error at most once per ``interval`` seconds.

    The first occurrence of a kind is logged with its traceback; repeats within the interval
    are counted and summarised in one line when the next one is logged.
    """

    def __init__(self, interval: float = LOOP_ERROR_INTERVAL, clock: Callable[[], float] = time.monotonic,
                 logger: logging.Logger = log) -> None:
        self.interval = interval
        self._clock = clock
        self._logger = logger
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        now = self._clock()
        kind = self._kind(f"{context.get('message', '')}|{type(exc).__name__}|{getattr(exc, 'errno', '')}", now)
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._last[kind] = now
        repeats = self._suppressed.pop(kind, 0)
        note = f" ({repeats} more like it in the last {self.interval:.0f}s not logged)" if repeats else ""
        self._logger.error("%s%s", context.get("message", "unhandled error in the event loop"), note,
                           exc_info=exc if last is None else None)

    def _kind(self, kind: str, now: float) -> str:
        if kind in self._last or len(self._last) < MAX_KINDS:
            return kind
        for old in [k for k, at in self._last.items() if now - at >= self.interval and not self._suppressed.get(k)]:
            del self._last[old]
        return kind if len(self._last) < MAX_KINDS else "other errors in the event loop"
