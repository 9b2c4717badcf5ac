"""Fixtures of the alert tests: a second Prometheus for rules the shared stack cannot feed.

The pod -> workload -> HPA join is evaluated on a second real Prometheus. It loads the
committed rules and scrapes the stack's real exporter (vLLM and fake-NVML GPU series), the
stack's kube-state-metrics file and the owner series of
tests/fixtures/alerts/kube-state-metrics-owners.prom.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import FIXTURES, REPO, Processes, PrometheusServer, Stack, start_target

KSM_FIXTURE = FIXTURES / "kube-state-metrics.prom"
OWNERS_FIXTURE = FIXTURES / "alerts" / "kube-state-metrics-owners.prom"
RULES = REPO / "alerts" / "rules"


def _host(url: str) -> str:
    return url.removeprefix("http://")


@pytest.fixture(scope="session")
def extras_prometheus(scraped_stack: Stack) -> Iterator[PrometheusServer]:
    procs = Processes()
    prometheus: PrometheusServer | None = None
    try:
        ksm = start_target(procs, "kube-state-metrics", KSM_FIXTURE, growth=0.0)
        owners = start_target(procs, "kube-state-metrics-owners", OWNERS_FIXTURE, growth=0.0)
        prometheus = PrometheusServer({"scrape_configs": [
            {"job_name": "kvscale-exporter", "honor_labels": True,
             "static_configs": [{"targets": [_host(scraped_stack.exporter_url)]}]},
            {"job_name": "kube-state-metrics", "honor_labels": True,
             "static_configs": [{"targets": [_host(ksm), _host(owners)]}]},
        ]}, sorted(RULES.glob("*.rules.yml")))
        prometheus.wait_for("kvscale_gpu_up", timeout=60, min_results=5)
        yield prometheus
    finally:
        if prometheus is not None:
            prometheus.close()
        procs.stop()
