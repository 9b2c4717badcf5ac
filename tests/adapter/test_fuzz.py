"""The adapter's fuzz targets, short (CI): atheris drives the selector parser and URL routing for a few
thousand coverage-guided cases each; the long run is ``bench/fuzz_adapter.py`` (100,000 cases a target)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from adapter.selectors import SelectorError, parse_selector
from tests.adapter.fuzz_targets import check_selector, routing_input
from tests.conftest import PYTHON, REPO


def test_short_fuzz_run_finds_no_crash_or_hang(tmp_path: Path) -> None:
    proc = subprocess.run([PYTHON, str(REPO / "bench" / "fuzz_adapter.py"), "--runs", "3000", "--no-sizes",
                           "--artifacts", str(tmp_path)], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    for target in ("selectors", "routing"):
        line = next(x for x in proc.stdout.splitlines() if x.startswith(f"target={target} "))
        assert re.search(r"\bcases=3000\b", line), line
        assert "crashes=[]" in line and "hangs=[]" in line, line
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("text", ["a in (,b)", "a=", "!a,b!=c", "a.b/c in (x,y),d notin (z)", "a==b"])
def test_selector_round_trip_holds_on_edge_cases(text: str) -> None:
    check_selector(text)
    assert str(parse_selector(text))


def test_selector_property_catches_a_broken_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fuzz property can fail: a selector printed wrongly is caught."""
    from adapter import selectors

    monkeypatch.setattr(selectors.Selector, "__str__", lambda self: "x=y")
    with pytest.raises(AssertionError):
        check_selector("a=b")
    with pytest.raises(SelectorError):
        parse_selector("a in (")


def test_routing_inputs_are_one_request_line() -> None:
    for data in (b"", b"\x00", b"\x00 a\r\nb", b"\x01x\x00labelSelector", bytes(range(256))):
        target = routing_input(data)
        assert target.startswith(b"/") and not any(c in target for c in b" \r\n")
