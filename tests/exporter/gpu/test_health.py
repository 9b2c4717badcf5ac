"""GPU health signals through the real pynvml over the fake libnvidia-ml: present, unsupported, failing."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.collector import check_series
from exporter.gpu.health import SIGNALS, HealthReading, health_series
from tests.exporter.gpu.conftest import Cycle
from tests.exporter.gpu.fakenvml import MIG

# signal -> the families it feeds
FAMILIES = {
    "ecc": {"kvscale_gpu_ecc_errors_total"},
    "clock_events": {"kvscale_gpu_clock_event_active"},
    "retired_pages": {"kvscale_gpu_retired_pages", "kvscale_gpu_retired_pages_pending"},
    "remapped_rows": {"kvscale_gpu_remapped_rows", "kvscale_gpu_row_remap_pending", "kvscale_gpu_row_remap_failure"},
    "pcie_replay": {"kvscale_gpu_pcie_replays_total"},
}


def of_gpu(cycle: Cycle, family: str, gpu: str, key: str | None = None) -> dict[str, float]:
    return {(labels.get(key, "") if key else ""): v for labels, v in cycle.of(family) if labels["gpu"] == gpu}


def signal_state(cycle: Cycle, gpu: str, signal: str) -> tuple[float | None, float | None]:
    def find(family: str) -> list[float]:
        return [v for lab, v in cycle.of(family) if lab["gpu"] == gpu and lab["signal"] == signal]

    supported, success = find("kvscale_gpu_health_supported"), find("kvscale_gpu_health_success")
    return (supported[0] if supported else None, success[0] if success else None)


def test_health_signals_are_read_in_catalog_units(nvml_child: Any) -> None:
    child = nvml_child()
    for line in ("ecc 1 0 0 12", "ecc 1 0 1 340", "ecc 1 1 0 1", "ecc 1 1 1 2", "clocks 1 76",  # 4|8|64
                 "retired 1 0 3", "retired 1 1 2", "retired_pending 1 1", "remapped 1 5 1 1 0", "replay 1 17"):
        child.inject(line)
    cycle = child.collect()
    ecc = {(lab["error_type"], lab["counter_type"]): v for lab, v in cycle.of("kvscale_gpu_ecc_errors_total")
           if lab["gpu"] == "1"}
    assert ecc == {("corrected", "volatile"): 12.0, ("corrected", "aggregate"): 340.0,
                   ("uncorrected", "volatile"): 1.0, ("uncorrected", "aggregate"): 2.0}
    active = {k for k, v in of_gpu(cycle, "kvscale_gpu_clock_event_active", "1", "reason").items() if v == 1.0}
    assert active == {"sw_power_cap", "hw_slowdown", "hw_thermal_slowdown"}
    assert of_gpu(cycle, "kvscale_gpu_clock_event_active", "0", "reason")["hw_slowdown"] == 0.0
    assert of_gpu(cycle, "kvscale_gpu_retired_pages", "1", "cause") == {"single_bit_ecc": 3.0, "double_bit_ecc": 2.0}
    assert of_gpu(cycle, "kvscale_gpu_retired_pages_pending", "1") == {"": 1.0}
    assert of_gpu(cycle, "kvscale_gpu_remapped_rows", "1", "cause") == {"correctable": 5.0, "uncorrectable": 1.0}
    assert of_gpu(cycle, "kvscale_gpu_row_remap_pending", "1") == {"": 1.0}
    assert of_gpu(cycle, "kvscale_gpu_row_remap_failure", "1") == {"": 0.0}
    assert of_gpu(cycle, "kvscale_gpu_pcie_replays_total", "1") == {"": 17.0}
    assert of_gpu(cycle, "kvscale_gpu_pcie_replays_total", "0") == {"": 0.0}  # healthy is 0, and present
    assert {signal_state(cycle, "1", s) for s in SIGNALS} == {(1.0, 1.0)}


@pytest.mark.parametrize("signal", sorted(FAMILIES))
def test_each_signal_unsupported_then_failing_then_back(nvml_child: Any, signal: str) -> None:
    fake = {"clock_events": "clocks", "retired_pages": "retired", "remapped_rows": "remapped",
            "pcie_replay": "replay"}.get(signal, signal)
    child = nvml_child()
    child.inject(f"unsupported 1 {fake}")
    unsupported = child.collect()
    assert signal_state(unsupported, "1", signal) == (0.0, None)  # unsupported: no success series at all
    assert not any(of_gpu(unsupported, f, "1") for f in FAMILIES[signal])  # absent, never 0
    assert all(of_gpu(unsupported, f, "2") for f in FAMILIES[signal])  # other GPUs unaffected
    others = [s for s in SIGNALS if s != signal]
    assert {signal_state(unsupported, "1", s) for s in others} == {(1.0, 1.0)}  # one signal, not the device
    assert unsupported.by_gpu("kvscale_gpu_up")["1"] == 1.0
    child.inject(f"failing 1 {fake}")
    failing = child.collect()
    assert failing.success
    assert signal_state(failing, "1", signal) == (1.0, 0.0)
    assert not any(of_gpu(failing, f, "1") for f in FAMILIES[signal])  # no frozen value
    assert failing.by_gpu("kvscale_gpu_up")["1"] == 1.0
    child.inject(f"supported 1 {fake}")
    back = child.collect()
    assert signal_state(back, "1", signal) == (1.0, 1.0)
    assert all(of_gpu(back, f, "1") for f in FAMILIES[signal])
    assert child.log().count(f"GPU 1: reading {signal} failed: Unknown Error") == 1


def test_mig_devices_and_lost_gpus_have_no_health_series(nvml_child: Any) -> None:
    child = nvml_child(profile=MIG)
    child.inject("lost 1")
    cycle = child.collect()
    health = {lab["gpu"] for name, lab, _ in cycle.series if name.startswith("kvscale_gpu_health_")}
    assert health == {"0"}  # the MIG board yes; its MIG devices and the lost GPU 1 no


@pytest.mark.parametrize(("reading", "expected"), [
    pytest.param(HealthReading(), [], id="nothing asked"),
    pytest.param(HealthReading(outcomes={"ecc": "unsupported"}),
                 [("kvscale_gpu_health_supported", "ecc", 0.0)], id="unsupported: no success series"),
    pytest.param(HealthReading(outcomes={"pcie_replay": "failed"}),
                 [("kvscale_gpu_health_supported", "pcie_replay", 1.0),
                  ("kvscale_gpu_health_success", "pcie_replay", 0.0)], id="failed"),
    pytest.param(HealthReading(outcomes={"pcie_replay": "ok"}, pcie_replays=3),
                 [("kvscale_gpu_health_supported", "pcie_replay", 1.0),
                  ("kvscale_gpu_health_success", "pcie_replay", 1.0), ("kvscale_gpu_pcie_replays_total", None, 3.0)],
                 id="ok"),
])
def test_health_series_table(reading: HealthReading, expected: list[tuple[str, str | None, float]]) -> None:
    labels = {"node": "n", "gpu": "0", "uuid": "GPU-x", "gpu_model": "H100"}
    series = health_series(reading, labels)
    check_series(series)
    assert [(s.family, s.labels.get("signal"), s.value) for s in series] == expected
