"""Reading a GPU's health signals through pynvml (blocking: runs in the collector's worker thread).

One signal's failure never spoils another's or the device's readings: each call's
outcome is recorded (:mod:`exporter.gpu.health`). An unsupported query
(``NVML_ERROR_NOT_SUPPORTED``, or a symbol an older driver lacks) is ``unsupported``;
any other NVML error is ``failed`` (logged once per device and signal by the caller's
``warn_once``). Clock events use ``nvmlDeviceGetCurrentClocksEventReasons`` and fall back
to its older name ``...ThrottleReasons``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pynvml

from exporter.gpu.health import HealthReading, Signal

WarnOnce = Callable[[str, str], None]
"""(key, message): log once per key."""

_UNSUPPORTED = (pynvml.NVMLError_NotSupported, pynvml.NVMLError_FunctionNotFound)
_ECC = (("corrected", pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED),
        ("uncorrected", pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED))
_COUNTERS = (("volatile", pynvml.NVML_VOLATILE_ECC), ("aggregate", pynvml.NVML_AGGREGATE_ECC))
_RETIREMENT = (("single_bit_ecc", pynvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS),
               ("double_bit_ecc", pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR))


def read_health(handle: Any, *, device: str, warn_once: WarnOnce) -> HealthReading:
    """Every health signal of one whole GPU."""
    reading = HealthReading()

    def attempt(signal: Signal, read: Callable[[], None]) -> None:
        try:
            read()
        except _UNSUPPORTED as exc:
            reading.outcomes[signal] = "unsupported"
            if isinstance(exc, pynvml.NVMLError_FunctionNotFound):
                warn_once(f"health:{signal}", f"{signal} is missing from this driver's NVML: reported unsupported")
            return
        except pynvml.NVMLError as exc:
            reading.outcomes[signal] = "failed"
            warn_once(f"health:{device}:{signal}:{exc}", f"GPU {device}: reading {signal} failed: {exc}")
            return
        reading.outcomes[signal] = "ok"

    def ecc() -> None:
        counts = {(name, counter): int(pynvml.nvmlDeviceGetTotalEccErrors(handle, kind, counter_kind))
                  for name, kind in _ECC for counter, counter_kind in _COUNTERS}
        reading.ecc = counts

    def clock_events() -> None:
        try:
            mask = pynvml.nvmlDeviceGetCurrentClocksEventReasons(handle)
        except pynvml.NVMLError_FunctionNotFound:
            mask = pynvml.nvmlDeviceGetCurrentClocksThrottleReasons(handle)  # drivers before 535
        reading.clock_event_mask = int(mask)

    def retired_pages() -> None:
        pages = {cause: len(pynvml.nvmlDeviceGetRetiredPages(handle, code)) for cause, code in _RETIREMENT}
        pending = bool(pynvml.nvmlDeviceGetRetiredPagesPendingStatus(handle))
        reading.retired_pages, reading.retired_pending = pages, pending

    def remapped_rows() -> None:
        correctable, uncorrectable, pending, failure = pynvml.nvmlDeviceGetRemappedRows(handle)
        reading.remapped_rows = {"correctable": int(correctable), "uncorrectable": int(uncorrectable)}
        reading.remap_pending, reading.remap_failure = bool(pending), bool(failure)

    def pcie_replay() -> None:
        reading.pcie_replays = int(pynvml.nvmlDeviceGetPcieReplayCounter(handle))

    attempt("ecc", ecc)
    attempt("clock_events", clock_events)
    attempt("retired_pages", retired_pages)
    attempt("remapped_rows", remapped_rows)
    attempt("pcie_replay", pcie_replay)
    return reading
