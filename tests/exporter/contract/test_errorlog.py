"""The problem log and the event loop's exception handler: bounded whatever the flood."""

from __future__ import annotations

import asyncio
import errno
import logging

import pytest

from exporter.contract.errorlog import MAX_KINDS, QuietExceptionHandler, RateLimitedLog
from tests.exporter.helpers import ManualClock


def test_rate_limited_log_counts_what_it_drops(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limited = RateLimitedLog(logging.getLogger("test.ratelimit"), burst=3, interval=10.0, monotonic=lambda: now[0])
    with caplog.at_level(logging.WARNING, "test.ratelimit"):
        for i in range(10):
            limited.warning("bad %d", i)
        assert [r.getMessage() for r in caplog.records] == ["bad 0", "bad 1", "bad 2"]
        assert limited.suppressed == 7
        now[0] = 10.0
        limited.warning("bad %d", 10)
    assert [r.getMessage() for r in caplog.records][3:] == ["7 similar messages suppressed in the last 10 s",
                                                             "bad 10"]


def test_the_exception_handler_logs_one_traceback_per_kind_and_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock(0.0)
    handler = QuietExceptionHandler(interval=10.0, clock=clock)
    loop = asyncio.new_event_loop()
    emfile = OSError(errno.EMFILE, "Too many open files")
    try:
        with caplog.at_level(logging.ERROR, logger="exporter.contract.errorlog"):
            for _ in range(1000):  # what accept() past the descriptor limit produces
                handler(loop, {"message": "socket.accept() out of system resource", "exception": emfile})
                clock.now += 0.001
            handler(loop, {"message": "another error", "exception": ValueError("x")})
            clock.now += 10
            handler(loop, {"message": "socket.accept() out of system resource", "exception": emfile})
    finally:
        loop.close()
    records = caplog.records
    assert len(records) == 3
    assert records[0].exc_info is not None and records[2].exc_info is None
    assert "999 more like it" in records[2].getMessage()


def test_messages_naming_objects_do_not_grow_the_kinds_or_the_log(caplog: pytest.LogCaptureFixture) -> None:
    """asyncio names the callback or task in its message: each error a new kind, without a bound."""
    clock = ManualClock(0.0)
    logger = logging.getLogger("test.loop")
    handler = QuietExceptionHandler(interval=10.0, clock=clock, logger=logger)
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.ERROR, logger="test.loop"):
            for i in range(10_000):
                handler(loop, {"message": f"Exception in callback <Handle {i:#x}>", "exception": KeyError("k")})
            assert len(handler._last) <= MAX_KINDS + 1
            assert len(caplog.records) == MAX_KINDS + 1  # each kind once, then one line for all the others
            clock.now += 10  # the old kinds expire and make room again
            handler(loop, {"message": "Exception in callback <Handle new>", "exception": KeyError("k")})
    finally:
        loop.close()
    assert caplog.records[-1].getMessage() == "Exception in callback <Handle new>"
    assert caplog.records[-1].exc_info is not None
