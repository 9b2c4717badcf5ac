"""The static preview: real PNGs drawn from the end-to-end stack's Prometheus."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from matplotlib import image

from dashboards.preview import PreviewSettings, fetch_panel, render_dashboard
from dashboards.prom_client import PrometheusClient, PrometheusError, Series
from tests.conftest import Stack

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STACK_VARIABLES = {"cluster": ".*", "namespace": "demo", "model": ".*", "pod": ".*", "node": ".*"}


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_MAGIC
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_fleet_preview_from_the_stack(scraped_stack: Stack, default_build: dict[str, dict[str, Any]],
                                      tmp_path: Path) -> None:
    settings = PreviewSettings(minutes=2, rate_interval="20s", variables=STACK_VARIABLES)
    client = PrometheusClient(scraped_stack.prometheus.url)
    scraped_stack.prometheus.wait_for("kvscale_vllm_cost_per_million_tokens_dollars", timeout=45, min_results=2)
    out, panels = render_dashboard(default_build["fleet"], client, settings, tmp_path / "fleet.png")
    assert out.exists()
    width, height = _png_size(out)
    assert width > 1000 and height > 800
    pixels = image.imread(out)
    # Not blank: a real share of the pixels differ from the white background.
    non_white = (pixels[:, :, :3] < 0.95).any(axis=2).mean()
    assert non_white > 0.02
    drawn = [p for p in panels if p.panel["type"] != "row"]
    assert all(p.error is None for p in drawn)
    assert all(p.traces for p in drawn), [p.panel["title"] for p in drawn if not p.traces]


class _Failing:
    def query_range(self, expr: str, *, start: float, end: float, step: float) -> list[Series]:
        raise PrometheusError("bad_data: 1:5: parse error")

    def query(self, expr: str, *, at: float) -> list[Series]:
        raise PrometheusError("unreachable")


def test_a_failing_query_is_drawn_not_raised(default_build: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    out, panels = render_dashboard(default_build["gpu"], _Failing(), PreviewSettings(), tmp_path / "gpu.png")
    errors = {p.error for p in panels if p.panel["type"] != "row"}
    assert errors == {"bad_data: 1:5: parse error", "unreachable"}
    assert out.read_bytes()[:8] == PNG_MAGIC


class _Recording:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []

    def query_range(self, expr: str, *, start: float, end: float, step: float) -> list[Series]:
        self.calls.append((expr, step))
        return [Series({"pod": "vllm-a"}, ((end - 60, 1.0), (end, 2.0)))]

    def query(self, expr: str, *, at: float) -> list[Series]:
        return [Series({"__name__": "x", "pod": "vllm-a", "job": "j"}, ((at, 1.0),))]


@pytest.mark.parametrize(("kind", "expect_rows"), [("timeseries", False), ("table", True)])
def test_fetch_panel_substitutes_variables(kind: str, expect_rows: bool) -> None:
    api = _Recording()
    panel = {"type": kind, "title": "t", "targets": [
        {"refId": "A", "expr": 'rate(x{pod=~"$pod"}[$__rate_interval])', "legendFormat": "{{pod}}"}]}
    settings = PreviewSettings(minutes=10, points=60, rate_interval="2m", variables={"pod": "vllm-a"})
    data = fetch_panel(panel, api, settings, end=1000.0)
    if expect_rows:
        assert data.rows == ({"pod": "vllm-a", "Value": "1"},)
    else:
        assert api.calls == [('rate(x{pod=~"vllm-a"}[2m])', 10.0)]
        assert data.traces[0].name == "vllm-a"
        assert data.traces[0].values == (1.0, 2.0)


def test_unknown_variable_becomes_a_panel_error() -> None:
    panel = {"type": "timeseries", "title": "t", "targets": [{"refId": "A", "expr": 'x{a="$nope"}'}]}
    data = fetch_panel(panel, _Recording(), PreviewSettings(), end=1000.0)
    assert data.error is not None and "$nope" in data.error
