"""Pure projection of a GPU's health signals (ECC, clock events, page retirement, row remapping,
PCIe replays) onto the catalog's families.

Each signal is read by its own NVML call (:mod:`exporter.gpu.health_read`), and each call
can be unsupported (an older driver, a GPU without ECC, a MIG device) or fail on its own.
So every signal says which it was: ``kvscale_gpu_health_supported{signal}`` is 1 or 0, and
for a supported signal ``kvscale_gpu_health_success{signal}`` is 1 when this cycle's read
worked, 0 when it raised. A signal's values are present only when its read worked: an
unsupported query is absent, never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from exporter.collector import Series

Signal = Literal["ecc", "clock_events", "retired_pages", "remapped_rows", "pcie_replay"]
SIGNALS: tuple[Signal, ...] = ("ecc", "clock_events", "retired_pages", "remapped_rows", "pcie_replay")
Outcome = Literal["ok", "unsupported", "failed"]

CLOCK_EVENT_REASONS: tuple[tuple[str, int], ...] = (
    # (reason label, NVML's nvmlClocksEventReason* bit)
    ("gpu_idle", 0x1),
    ("applications_clocks_setting", 0x2),
    ("sw_power_cap", 0x4),
    ("hw_slowdown", 0x8),
    ("sync_boost", 0x10),
    ("sw_thermal_slowdown", 0x20),
    ("hw_thermal_slowdown", 0x40),
    ("hw_power_brake_slowdown", 0x80),
    ("display_clock_setting", 0x100),
)



@dataclass
class HealthReading:
    """One device's health signals in NVML's terms; ``outcomes`` says how each signal's read went."""

    outcomes: dict[Signal, Outcome] = field(default_factory=dict)
    ecc: dict[tuple[str, str], int] = field(default_factory=dict)
    """(error_type: corrected|uncorrected, counter_type: volatile|aggregate) -> count."""
    clock_event_mask: int | None = None
    retired_pages: dict[str, int] = field(default_factory=dict)
    """cause (single_bit_ecc | double_bit_ecc) -> pages retired."""
    retired_pending: bool | None = None
    remapped_rows: dict[str, int] = field(default_factory=dict)
    """cause (correctable | uncorrectable) -> rows remapped."""
    remap_pending: bool | None = None
    remap_failure: bool | None = None
    pcie_replays: int | None = None


def health_series(reading: HealthReading, labels: Mapping[str, str]) -> list[Series]:
    """The device's health series (``labels``: its identity labels)."""
    out: list[Series] = []
    for signal in SIGNALS:
        outcome = reading.outcomes.get(signal)
        if outcome is None:
            continue  # not asked (a MIG device, a down GPU)
        tagged = {**labels, "signal": signal}
        out.append(Series("kvscale_gpu_health_supported", tagged, 0.0 if outcome == "unsupported" else 1.0))
        if outcome != "unsupported":
            out.append(Series("kvscale_gpu_health_success", tagged, 1.0 if outcome == "ok" else 0.0))
    for (error_type, counter_type), count in sorted(reading.ecc.items()):
        out.append(Series("kvscale_gpu_ecc_errors_total",
                          {**labels, "error_type": error_type, "counter_type": counter_type}, float(count)))
    if reading.clock_event_mask is not None:
        for reason, bit in CLOCK_EVENT_REASONS:
            out.append(Series("kvscale_gpu_clock_event_active", {**labels, "reason": reason},
                              1.0 if reading.clock_event_mask & bit else 0.0))
    for cause, pages in sorted(reading.retired_pages.items()):
        out.append(Series("kvscale_gpu_retired_pages", {**labels, "cause": cause}, float(pages)))
    _flag(out, "kvscale_gpu_retired_pages_pending", labels, reading.retired_pending)
    for cause, rows in sorted(reading.remapped_rows.items()):
        out.append(Series("kvscale_gpu_remapped_rows", {**labels, "cause": cause}, float(rows)))
    _flag(out, "kvscale_gpu_row_remap_pending", labels, reading.remap_pending)
    _flag(out, "kvscale_gpu_row_remap_failure", labels, reading.remap_failure)
    if reading.pcie_replays is not None:
        out.append(Series("kvscale_gpu_pcie_replays_total", dict(labels), float(reading.pcie_replays)))
    return out


def _flag(out: list[Series], name: str, labels: Mapping[str, str], value: bool | None) -> None:
    if value is not None:
        out.append(Series(name, dict(labels), 1.0 if value else 0.0))
