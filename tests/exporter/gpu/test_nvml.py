"""Real pynvml over the fake libnvidia-ml: profiles, XID events and injected faults."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.exporter.gpu.conftest import Cycle
from tests.exporter.gpu.fakenvml import H100X8, MIG, FakeLibs, profile_uuids

REMAP_FAMILIES = {"kvscale_gpu_remapped_rows", "kvscale_gpu_row_remap_pending", "kvscale_gpu_row_remap_failure"}
HEALTH_FAMILIES = {"kvscale_gpu_health_supported", "kvscale_gpu_health_success", "kvscale_gpu_ecc_errors_total",
                   "kvscale_gpu_clock_event_active", "kvscale_gpu_retired_pages", "kvscale_gpu_retired_pages_pending",
                   "kvscale_gpu_pcie_replays_total", *REMAP_FAMILIES}
GPU_FAMILIES = {"kvscale_gpu_up", "kvscale_gpu_utilization_ratio", "kvscale_gpu_memory_used_bytes",
                "kvscale_gpu_memory_total_bytes", "kvscale_gpu_power_watts", "kvscale_gpu_temperature_celsius",
                "kvscale_gpu_sm_clock_hertz", *HEALTH_FAMILIES}


def families_of(cycle: Cycle, gpu: str) -> set[str]:
    return {name for name, labels, _ in cycle.series if labels.get("gpu") == gpu}


def test_h100_node_reads_every_gpu_in_base_units(nvml_child: Any) -> None:
    cycle = nvml_child().collect()
    assert cycle.success
    uuids = profile_uuids(H100X8)
    assert cycle.by_gpu("kvscale_gpu_up") == {str(i): 1.0 for i in range(8)}
    assert {cycle.labels("kvscale_gpu_up", str(i))["uuid"] for i in range(8)} == set(uuids)
    assert cycle.labels("kvscale_gpu_power_watts", "2") == {
        "node": "gpu-node-1", "gpu": "2", "uuid": uuids[2], "gpu_model": "NVIDIA H100 80GB HBM3"}
    assert cycle.by_gpu("kvscale_gpu_power_watts")["2"] == 540.25
    assert cycle.by_gpu("kvscale_gpu_utilization_ratio")["0"] == 0.97
    assert cycle.by_gpu("kvscale_gpu_sm_clock_hertz")["2"] == 1965e6
    assert cycle.by_gpu("kvscale_gpu_temperature_celsius")["4"] == 41.0
    assert cycle.by_gpu("kvscale_gpu_memory_used_bytes")["0"] == 71940702208.0
    assert set(cycle.by_gpu("kvscale_gpu_memory_total_bytes").values()) == {85520809984.0}
    assert not cycle.of("kvscale_gpu_xid_errors_total")  # no event yet: no counter invented


@pytest.mark.parametrize(("fault", "cause"), [("lost", "GPU is lost"), ("unknown", "Unknown Error")])
def test_failing_gpu_reports_down_while_the_others_keep_reporting(nvml_child: Any, fault: str, cause: str) -> None:
    child = nvml_child()
    assert child.collect().by_gpu("kvscale_gpu_up")["3"] == 1.0
    child.inject(f"{fault} 3")
    for _ in range(2):
        down = child.collect()
        assert down.success  # one GPU is not the collector failing
        assert down.by_gpu("kvscale_gpu_up") == {**{str(i): 1.0 for i in range(8)}, "3": 0.0}
        assert families_of(down, "3") == {"kvscale_gpu_up"}  # nothing frozen at its last value
        assert families_of(down, "4") == GPU_FAMILIES
    child.inject("back 3")
    back = child.collect()
    assert back.by_gpu("kvscale_gpu_up")["3"] == 1.0
    assert back.by_gpu("kvscale_gpu_power_watts")["3"] == 555.5
    log = child.log()
    assert log.count(f"GPU 3 ({profile_uuids(H100X8)[3]}) does not answer: {cause}") == 1  # once, with the cause
    assert f"GPU 3 ({profile_uuids(H100X8)[3]}) answers again" in log


def test_xid_events_are_counted_per_gpu_and_code(nvml_child: Any) -> None:
    child = nvml_child()
    child.collect()
    for line in ("xid 2 79 -1", "xid 2 79 -1", "xid 5 48 -1"):
        child.inject(line)
    first = child.collect()
    xids = {(labels["gpu"], labels["xid"]): v for labels, v in first.of("kvscale_gpu_xid_errors_total")}
    assert xids == {("2", "79"): 2.0, ("5", "48"): 1.0}
    child.inject("xid 2 79 -1")
    second = child.collect()
    assert second.value("kvscale_gpu_xid_errors_total", gpu="2", xid="79") == 3.0  # a counter: it only grows
    assert second.value("kvscale_gpu_xid_errors_total", gpu="5", xid="48") == 1.0
    assert second.labels("kvscale_gpu_up", "2")["uuid"] == profile_uuids(H100X8)[2]


def test_mig_node_reports_mig_devices_without_double_counting_memory(nvml_child: Any) -> None:
    cycle = nvml_child(profile=MIG).collect()
    assert cycle.success
    mig_uuids = profile_uuids(MIG, "mig")
    assert cycle.by_gpu("kvscale_gpu_up") == {"0": 1.0, "1": 1.0, "0/7": 1.0, "0/8": 1.0, "0/9": 1.0, "0/2": 1.0}
    assert [cycle.labels("kvscale_gpu_up", g)["uuid"] for g in ("0/7", "0/8", "0/9", "0/2")] == mig_uuids
    assert cycle.labels("kvscale_gpu_up", "0/2")["gpu_model"] == "NVIDIA H100 80GB HBM3 MIG 3g.40gb"
    # The partitioned board: power, temperature, clock; memory only per MIG device, no utilization.
    assert families_of(cycle, "0") == {"kvscale_gpu_up", "kvscale_gpu_power_watts", "kvscale_gpu_temperature_celsius",
                                       "kvscale_gpu_sm_clock_hertz", *HEALTH_FAMILIES}
    assert families_of(cycle, "0/8") == {"kvscale_gpu_up", "kvscale_gpu_memory_used_bytes",
                                         "kvscale_gpu_memory_total_bytes", "kvscale_gpu_xid_errors_total"}
    memory = cycle.by_gpu("kvscale_gpu_memory_total_bytes")
    assert memory == {"0/7": 10334765056.0, "0/8": 10334765056.0, "0/9": 10334765056.0,
                      "0/2": 42144366592.0, "1": 85520809984.0}
    assert families_of(cycle, "1") == GPU_FAMILIES
    # The profile's XID 31 on GPU instance 8 lands on that MIG device, not on the board.
    assert cycle.value("kvscale_gpu_xid_errors_total", xid="31") == 1.0
    assert cycle.value("kvscale_gpu_xid_errors_total", gpu="0/8", xid="31") == 1.0


def test_lost_mig_gpu_takes_its_mig_devices_down(nvml_child: Any) -> None:
    child = nvml_child(profile=MIG)
    child.collect()
    child.inject("lost 0")
    cycle = child.collect()
    assert cycle.by_gpu("kvscale_gpu_up") == {"0": 0.0, "1": 1.0, "0/7": 0.0, "0/8": 0.0, "0/9": 0.0, "0/2": 0.0}


def test_older_driver_without_some_symbols_still_reports_gpus(nvml_child: Any, fake_libs: FakeLibs) -> None:
    child = nvml_child(lib_dir=fake_libs.old_driver)
    child.inject("xid 1 79 -1")
    cycles = [child.collect(), child.collect()]
    for cycle in cycles:
        assert cycle.success
        assert cycle.by_gpu("kvscale_gpu_up") == {str(i): 1.0 for i in range(8)}
        # No MIG calls: read as whole GPUs; no row remapping (reported unsupported), clock events by the old name.
        assert families_of(cycle, "1") == GPU_FAMILIES - REMAP_FAMILIES
        assert cycle.value("kvscale_gpu_health_supported", gpu="1", signal="remapped_rows") == 0.0
        assert cycle.value("kvscale_gpu_health_success", gpu="1", signal="clock_events") == 1.0
        assert not cycle.of("kvscale_gpu_xid_errors_total")
    log = child.log()
    assert log.count("XID events are not available from this driver (Function Not Found)") == 1  # once
    assert log.count("nvmlDeviceGetMigMode is missing from this driver's NVML") == 1


def test_wedged_driver_fails_the_collector_until_it_recovers(nvml_child: Any) -> None:
    child = nvml_child()
    child.inject("fail_all")
    failed = child.collect()
    assert not failed.success
    assert failed.series == []
    assert "nvmlDeviceGetCount failed: Unknown Error" in child.log()
    child.inject("ok_all")
    assert child.collect().by_gpu("kvscale_gpu_up") == {str(i): 1.0 for i in range(8)}


def test_unsupported_queries_are_absent_not_zero(nvml_child: Any, tmp_path: Path) -> None:
    profile = tmp_path / "old.profile"
    profile.write_text("gpu|GPU-11111111-2222-4333-8444-555555555555|Tesla T4|16106127360|0|-1|-1|-1|-1\n")
    cycle = nvml_child(profile=profile).collect()
    assert cycle.success
    assert families_of(cycle, "0") == {"kvscale_gpu_up", "kvscale_gpu_memory_used_bytes",
                                       "kvscale_gpu_memory_total_bytes", *HEALTH_FAMILIES}


def test_hung_driver_call_skips_cycles_instead_of_piling_up_threads(nvml_child: Any) -> None:
    child = nvml_child(timeout=1.0)
    assert child.collect().success
    child.inject("hang")
    timed_out = child.collect()
    assert not timed_out.success
    skipped = child.collect()  # the first read is still stuck inside the library
    assert not skipped.success
    assert "the previous NVML read has not returned (driver hung?)" in child.log()
    child.inject("release")
    deadline = time.monotonic() + 60
    while not (cycle := child.collect()).success:
        assert time.monotonic() < deadline, child.log()
        time.sleep(0.05)
    assert cycle.by_gpu("kvscale_gpu_up") == {str(i): 1.0 for i in range(8)}


def test_gpu_lost_before_discovery_is_down_then_found_again(nvml_child: Any) -> None:
    child = nvml_child()
    child.inject("lost 3")
    first = child.collect()
    assert first.by_gpu("kvscale_gpu_up")["3"] == 0.0
    assert first.labels("kvscale_gpu_up", "3")["uuid"] == ""  # unknown until it answers
    assert families_of(first, "3") == {"kvscale_gpu_up"}
    child.inject("back 3")
    second = child.collect()
    assert second.labels("kvscale_gpu_up", "3")["uuid"] == profile_uuids(H100X8)[3]
    assert families_of(second, "3") == GPU_FAMILIES


def test_xid_history_survives_loss_and_recovery_without_new_events(nvml_child: Any) -> None:
    child = nvml_child()
    child.collect()
    child.inject("xid 2 79 -1")
    child.inject("xid 2 48 -1")
    fired = child.collect()
    labels = fired.labels("kvscale_gpu_xid_errors_total", "2")
    child.inject("lost 2")
    down = [child.collect(), child.collect()]
    for cycle in down:
        assert cycle.by_gpu("kvscale_gpu_up")["2"] == 0.0
        # The counters stay, same series, same counts: the fault's history is not lost with the GPU.
        assert families_of(cycle, "2") == {"kvscale_gpu_up", "kvscale_gpu_xid_errors_total"}
        assert {lab["xid"]: v for lab, v in cycle.of("kvscale_gpu_xid_errors_total")} == {"79": 1.0, "48": 1.0}
        assert cycle.labels("kvscale_gpu_xid_errors_total", "2") == labels
    child.inject("back 2")
    back = child.collect()
    assert back.by_gpu("kvscale_gpu_up")["2"] == 1.0
    assert {lab["xid"]: v for lab, v in back.of("kvscale_gpu_xid_errors_total")} == {"79": 1.0, "48": 1.0}
    child.inject("xid 2 79 -1")  # a new event after recovery counts on from the old count
    assert child.collect().value("kvscale_gpu_xid_errors_total", gpu="2", xid="79") == 2.0
