"""NVML units -> catalog base units, and the shape of a device's series."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from exporter.collector import check_series
from exporter.contract.catalog import BY_NAME
from exporter.gpu.readings import DeviceRef, Holder, RawReading, allocation_series, device_series, gpu_series

REF = DeviceRef("3", "GPU-36f675cc-81e7-4ef5-a8e2-5d940ed90475", "NVIDIA H100 80GB HBM3")
HOLDER = Holder("demo", "vllm-a", "vllm", resource="nvidia.com/gpu")


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
    series = device_series(replace(RawReading(REF), **changes), node="n1")
    assert {s.family: s.value for s in series} == {"kvscale_gpu_up": 1.0, family: value}


def test_device_labels_are_its_identity_only() -> None:
    (up,) = device_series(RawReading(REF), node="n1")
    assert dict(up.labels) == {"node": "n1", "gpu": "3", "uuid": REF.uuid, "gpu_model": REF.model}


def test_a_device_that_raised_is_down_and_keeps_its_xid_counts() -> None:
    reading = RawReading(REF, error="GPU is lost", utilization_percent=90, power_milliwatts=1000)
    series = device_series(reading, node="n1", xids={79: 1})
    assert [(s.family, s.labels.get("xid"), s.value) for s in series] == [
        ("kvscale_gpu_up", None, 0.0), ("kvscale_gpu_xid_errors_total", "79", 1.0)]


def test_gpu_series_routes_xids_by_uuid() -> None:
    other = DeviceRef("0/7", "MIG-8e81973e-0bec-47b0-b898-d190f9ebdacc", "NVIDIA H100 80GB HBM3 MIG 1g.10gb",
                      parent_uuid="GPU-x")
    series = gpu_series([RawReading(REF, temperature_celsius=50), RawReading(other, memory_used_bytes=5.0)],
                        node="n1", xids={(other.uuid, 31): 2, (REF.uuid, 79): 1})
    check_series(series)  # every family and label is in the catalog
    xids = {(s.labels["gpu"], s.labels["xid"]): s.value for s in series if s.family == "kvscale_gpu_xid_errors_total"}
    assert xids == {("0/7", "31"): 2.0, ("3", "79"): 1.0}
    assert BY_NAME["kvscale_gpu_xid_errors_total"].type == "counter"


def test_allocation_series_one_per_holder_with_gpu_index_and_pod_uid() -> None:
    shared = (Holder("demo", "a", "vllm", "nvidia.com/gpu.shared"), Holder("prod", "b", "engine", "gpu.nvidia.com",
                                                                            claim="gpu-claim"))
    unknown = "MIG-00000000-0000-4000-8000-000000000000"
    series = allocation_series({REF.uuid: shared, unknown: (HOLDER,)}, [REF], node="n1",
                               pod_uids={("prod", "b"): "uid-b"})
    check_series(series)
    rows = [dict(s.labels) for s in series]
    assert all(s.value == 1.0 for s in series)
    assert rows == [
        {"node": "n1", "gpu": "3", "uuid": REF.uuid, "namespace": "demo", "pod": "a", "container": "vllm",
         "pod_uid": "", "resource": "nvidia.com/gpu.shared", "claim": ""},
        {"node": "n1", "gpu": "3", "uuid": REF.uuid, "namespace": "prod", "pod": "b", "container": "engine",
         "pod_uid": "uid-b", "resource": "gpu.nvidia.com", "claim": "gpu-claim"},
        {"node": "n1", "gpu": "", "uuid": unknown, "namespace": "demo", "pod": "vllm-a", "container": "vllm",
         "pod_uid": "", "resource": "nvidia.com/gpu", "claim": ""},  # NVML does not know it (yet): gpu ""
    ]
