"""The exporter's fuzz targets, short (a few thousand cases each): no crash, no hang (issue 11).

Each target runs in its own process (libFuzzer owns it) with a fixed seed, so CI replays the same
cases; the long run is ``bench/fuzz_exporter.py TARGET --cases 100000``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import fuzz_exporter
from tests.conftest import REPO

CASES = 2000


@pytest.mark.parametrize("target", sorted(fuzz_exporter.TARGETS))
def test_fuzz_target_finds_no_crash_or_hang(target: str, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    result = subprocess.run([sys.executable, "bench/fuzz_exporter.py", target, "--cases", str(CASES), "--report",
                             str(report), "--artifacts", str(tmp_path / "artifacts")],
                            cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert report.exists(), result.stderr[-3000:]
    figures = json.loads(report.read_text())
    assert figures["cases"] == CASES
    assert figures["crash_kinds"] == {} and figures["hangs"] == 0, result.stderr[-3000:]
    assert result.returncode == 0
    assert not (tmp_path / "artifacts").exists()
