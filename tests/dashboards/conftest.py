"""Fixtures of the dashboard tests: the default build, and a Prometheus holding GPU series.

The shared end-to-end stack runs the exporter with ``--nvml off``; the GPU panels are
checked against a second real Prometheus that scrapes synthetic ``kvscale_gpu_*``
series (tests/fixtures/dashboards/gpu.prom, labels checked against the catalog).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dashboards import build
from exporter.thresholds import Thresholds
from tests.conftest import FIXTURES, Processes, PrometheusServer, start_target

GPU_FIXTURE = FIXTURES / "dashboards" / "gpu.prom"


@pytest.fixture(scope="session")
def default_build() -> dict[str, dict[str, Any]]:
    return build.render(Thresholds())


@pytest.fixture(scope="session")
def gpu_prometheus() -> Iterator[PrometheusServer]:
    procs = Processes()
    prometheus: PrometheusServer | None = None
    try:
        # Growth makes the XID counter climb, so increase() over it is non-zero.
        url = start_target(procs, "gpu-exporter", GPU_FIXTURE, growth=0.05)
        prometheus = PrometheusServer({"scrape_configs": [
            {"job_name": "kvscale-exporter", "honor_labels": True,
             "static_configs": [{"targets": [url.removeprefix("http://")]}]}]})
        prometheus.wait_for("kvscale_gpu_up", timeout=60, min_results=5)
        yield prometheus
    finally:
        if prometheus is not None:
            prometheus.close()
        procs.stop()
