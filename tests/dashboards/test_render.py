"""Pure parts of the preview drawing: value formatting, threshold colors, figure layout."""

from __future__ import annotations

import math
from typing import Any

import pytest

from dashboards.render import COLORS, PanelData, Trace, draw, format_value, stat_color, threshold_steps


@pytest.mark.parametrize(("value", "unit", "expected"), [
    (0.856, "percentunit", "86%"),
    (0.05, "percentunit", "5.0%"),
    (14.8123, "currencyUSD", "$14.81"),
    (1.0, "bool_yes_no", "Yes"),
    (0.0, "bool_yes_no", "No"),
    (76235669504, "bytes", "71.0 GiB"),
    (512, "bytes", "512 B"),
    (0.7251, "s", "725 ms"),
    (2.5, "s", "2.50 s"),
    (1.98e9, "hertz", "2.0 GHz"),
    (612, "watt", "612 W"),
    (12500, "short", "12.5k"),
    (4, "short", "4"),
    (math.nan, "s", "NaN"),
])
def test_format_value(value: float, unit: str, expected: str) -> None:
    assert format_value(value, unit) == expected


def _panel(steps: list[dict[str, Any]], kind: str = "stat", **extra: Any) -> dict[str, Any]:
    return {"type": kind, "title": "t", "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8},
            "fieldConfig": {"defaults": {"thresholds": {"steps": steps}, **extra}}}


STEPS: list[dict[str, Any]] = [
    {"value": None, "color": "green"}, {"value": 0.75, "color": "orange"}, {"value": 0.85, "color": "red"}]


@pytest.mark.parametrize(("value", "color"), [
    (0.1, COLORS["green"]), (0.75, COLORS["orange"]), (0.8, COLORS["orange"]), (0.85, COLORS["red"]),
    (3.0, COLORS["red"]),
])
def test_stat_color_takes_the_highest_step_reached(value: float, color: str) -> None:
    assert stat_color(value, _panel(STEPS)) == color


def test_threshold_steps_skip_the_base() -> None:
    assert threshold_steps(_panel(STEPS)) == [(0.75, "orange"), (0.85, "red")]
    assert threshold_steps({"type": "stat"}) == []


def test_draw_lays_out_every_kind_of_panel() -> None:
    trace = Trace("vllm-a", (0.0, 60.0, 120.0), (0.2, 0.5, 0.9))
    panels = [
        PanelData(panel={"type": "row", "title": "Row", "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1}}),
        PanelData(panel=_panel(STEPS), traces=(trace,)),
        PanelData(panel={**_panel(STEPS, "timeseries", unit="percentunit", min=0, max=1,
                                custom={"thresholdsStyle": {"mode": "dashed"}}),
                         "gridPos": {"x": 12, "y": 1, "w": 12, "h": 8}}, traces=(trace,)),
        PanelData(panel={**_panel([], "table"), "gridPos": {"x": 0, "y": 9, "w": 24, "h": 6}},
                  rows=({"pod": "vllm-a", "Value": "1"},)),
        PanelData(panel={**_panel([], "timeseries"), "gridPos": {"x": 0, "y": 15, "w": 12, "h": 8}},
                  error="bad_data: parse error"),
    ]
    figure = draw("Title", panels)
    # One axes per non-row panel (the stat's sparkline is an inset of its own axes).
    assert len([ax for ax in figure.axes if ax.get_title(loc="left")]) == 4
    series = next(ax for ax in figure.axes if ax.get_title(loc="left") == "t" and ax.lines)
    assert series.get_ylim()[0] == 0.0
    assert series.get_ylim()[1] == pytest.approx(1.04)
    dashed = [line for line in series.lines if line.get_linestyle() == "--"]
    assert sorted(float(line.get_ydata()[0]) for line in dashed) == [0.75, 0.85]  # type: ignore[index,arg-type]
    assert figure.get_size_inches()[1] > 23 * 0.4
