"""The adapter under many concurrent TLS clients (bounded for CI; the full 1,000 x 60 s run is
``bench/bench_adapter.py tls-load``): zero errors, and memory back to baseline once they leave."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adapter.helpers import FIXTURES, AdapterProcess, adapter_process
from tests.adapter.load import MiB, tls_load
from tests.conftest import Processes, start_static


@pytest.fixture
def served(tmp_path: Path) -> Iterator[AdapterProcess]:
    procs = Processes()
    try:
        exporter = start_static(procs, "exporter", FIXTURES / "exporter.prom")
        with adapter_process(tmp_path, exporter_url=exporter) as adapter:
            yield adapter
    finally:
        procs.stop()


async def test_concurrent_tls_clients_get_every_answer_and_memory_returns(served: AdapterProcess) -> None:
    result = await tls_load(served, clients=150, seconds=5)
    assert not result.errors, result.summary()
    assert result.requests > 150, result.summary()
    assert result.after_rss - result.baseline_rss <= 25 * MiB, result.summary()
