"""NVML units -> catalog base units, and the shape of a device's series."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from exporter.collector import check_series
from exporter.contract.catalog import BY_NAME
from exporter.gpu.readings import UNOWNED, DeviceRef, RawReading, device_series, gpu_series

REF = DeviceRef("3", "GPU-36f675cc-81e7-4ef5-a8e2-5d940ed90475", "NVIDIA H100 80GB HBM3")
OWNER = ("demo", "vllm-a", "vllm")


@pytest.mark.parametrize(("field", "raw", "family", "value"), [
    ("utilization_percent", 95, "kvscale_gpu_utilization_ratio", 0.95),
    ("utilization_percent", 0, "kvscale_gpu_utilization_ratio", 0.0),
    ("memory_used_bytes", 71940702208, "kvscale_gpu_memory_used_bytes", 71940702208.0),
    ("memory_total_bytes", 85520809984, "kvscale_gpu_memory_total_bytes", 85520809984.0),
    ("power_milliwatts", 540250, "kvscale_gpu_power_watts", 540.25),
    ("temperature_celsius", 61, "kvscale_gpu_temperature_celsius", 61.0),
    ("sm_clock_mhz", 1965, "kvscale_gpu_sm_clock_hertz", 1965e6),
])
def test_units(field: str, raw: float, family: str, value: float) -> None:
    changes: dict[str, Any] = {field: raw}
    series = device_series(replace(RawReading(REF), **changes), node="n1", owner=UNOWNED)
    assert {s.family: s.value for s in series} == {"kvscale_gpu_up": 1.0, family: value}


def test_labels_carry_the_owner() -> None:
    (up,) = device_series(RawReading(REF), node="n1", owner=OWNER)
    assert dict(up.labels) == {"node": "n1", "gpu": "3", "uuid": REF.uuid, "gpu_model": REF.model,
                               "namespace": "demo", "pod": "vllm-a", "container": "vllm"}


def test_a_device_that_raised_is_down_and_nothing_else() -> None:
    reading = RawReading(REF, error="GPU is lost", utilization_percent=90, power_milliwatts=1000)
    series = device_series(reading, node="n1", owner=OWNER, xids={79: 1})
    assert [(s.family, s.value) for s in series] == [("kvscale_gpu_up", 0.0)]


def test_gpu_series_routes_xids_and_owners_by_uuid() -> None:
    other = DeviceRef("0/7", "MIG-8e81973e-0bec-47b0-b898-d190f9ebdacc", "NVIDIA H100 80GB HBM3 MIG 1g.10gb",
                      parent_uuid="GPU-x")
    series = gpu_series([RawReading(REF, temperature_celsius=50), RawReading(other, memory_used_bytes=5.0)],
                        node="n1", owners={other.uuid: OWNER}, xids={(other.uuid, 31): 2, (REF.uuid, 79): 1})
    check_series(series)  # every family and label is in the catalog
    xids = {(s.labels["gpu"], s.labels["xid"]): s.value for s in series if s.family == "kvscale_gpu_xid_errors_total"}
    assert xids == {("0/7", "31"): 2.0, ("3", "79"): 1.0}
    pods = {s.labels["gpu"]: s.labels["pod"] for s in series if s.family == "kvscale_gpu_up"}
    assert pods == {"3": "", "0/7": "vllm-a"}
    assert BY_NAME["kvscale_gpu_xid_errors_total"].type == "counter"
