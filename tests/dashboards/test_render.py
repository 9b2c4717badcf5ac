"""Pure parts of the preview drawing: value formatting, threshold colors, figure layout."""

from __future__ import annotations

import itertools
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


def _crowded(pods: int = 40) -> PanelData:
    times = tuple(1_800_000_000.0 + 15 * i for i in range(60))  # 15 minutes
    traces = tuple(Trace(f"vllm-{i:02d}-7d9f8c-abcde", times, tuple(float(i) + 0.01 * j for j in range(60)))
                   for i in range(pods))
    panel = {**_panel([], "timeseries", unit="short"), "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8}}
    return PanelData(panel=panel, traces=traces)


def _boxes(figure: Any) -> tuple[Any, Any]:
    figure.canvas.draw()
    plot = next(ax for ax in figure.axes if ax.get_title(loc="left") == "t")
    legend = next(ax for ax in figure.axes if ax.get_legend() is not None)
    return plot, legend


def test_many_pods_keep_their_legend_outside_the_plot() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = draw("Title", [_crowded()])
    FigureCanvasAgg(figure)
    plot, strip = _boxes(figure)
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    legend_box = strip.get_legend().get_window_extent(renderer)
    assert not legend_box.overlaps(plot.get_window_extent(renderer))
    labels = [t.get_text() for t in strip.get_legend().get_texts()]
    # The highest series first, the rest counted: 40 pods never fill the panel.
    assert labels[0] == "vllm-39-7d9f8c-abcde" and labels[-1].startswith("+") and labels[-1].endswith(" more")
    assert len(labels) <= 3 * 4
    assert int(labels[-1].split()[0][1:]) + len(labels) - 1 == 40


def test_time_labels_do_not_overlap() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = draw("Title", [_crowded()], width_inches=9.0)
    FigureCanvasAgg(figure)
    plot, _ = _boxes(figure)
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    left, right = plot.get_xlim()
    ticks = [t for t in plot.get_xticklabels() if t.get_text() and left <= t.get_position()[0] <= right]
    assert 2 <= len(ticks) <= 4
    boxes = sorted((t.get_window_extent(renderer) for t in ticks), key=lambda b: b.x0)
    assert all(a.x1 < b.x0 for a, b in itertools.pairwise(boxes))


def test_a_stat_with_several_series_names_each() -> None:
    times = (0.0, 60.0)
    traces = (Trace("demo/other", times, (1.0, 1.0)), Trace("demo/third", times, (1.0, 1.0)))
    figure = draw("Title", [PanelData(panel=_panel([{"value": None, "color": "green"},
                                                     {"value": 0.5, "color": "red"}]), traces=traces)])
    texts = {t.get_text(): t.get_color() for ax in figure.axes for t in ax.texts}
    assert texts["demo/other"] and texts["demo/third"]
    assert [c for name, c in texts.items() if name == "1"] == [COLORS["red"]]


def test_a_heatmap_draws_per_bucket_counts() -> None:
    times = (0.0, 15.0, 30.0)
    # Cumulative buckets as Prometheus returns them: le=10 holds 2, le=100 holds 5 (3 of them above 10).
    traces = (Trace("100", times, (5.0, 5.0, 5.0)), Trace("10", times, (2.0, 2.0, 2.0)),
              Trace("+Inf", times, (5.0, 5.0, 5.0)))
    panel = {**_panel([], "heatmap"), "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8}}
    figure = draw("Title", [PanelData(panel=panel, traces=traces)])
    image = next(ax for ax in figure.axes if ax.images).images[0]
    rows = [list(r) for r in image.get_array()]  # type: ignore[union-attr]
    assert rows == [[2.0, 2.0, 2.0], [3.0, 3.0, 3.0], [0.0, 0.0, 0.0]]
