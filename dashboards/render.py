"""Draw one dashboard's panels, already fetched, onto a matplotlib figure laid out like Grafana.

No I/O and no pyplot global state: ``draw`` returns a ``Figure`` the caller saves.
Panels sit where their ``gridPos`` puts them on Grafana's 24-column grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from dashboards.render_series import heatmap, outside_legend, time_axis

# Grafana's named colors as hex, so threshold lines look as they do in Grafana.
COLORS = {"green": "#56A64B", "orange": "#FF9830", "red": "#E02F44", "text": "#464C54", "grid": "#E4E7EB"}
GRID_COLUMNS = 24
UNIT_INCHES = 0.42  # height of one grid unit; Grafana's is 30 px + margin
LEGEND_INCHES = 0.75  # the legend strip under a graph: three rows at legend size


@dataclass(frozen=True)
class Trace:
    name: str
    times: tuple[float, ...]
    values: tuple[float, ...]


@dataclass(frozen=True)
class PanelData:
    """What a panel showed: time series, table rows, or the error that replaced them."""

    panel: dict[str, Any]
    traces: tuple[Trace, ...] = ()
    rows: tuple[dict[str, str], ...] = ()
    error: str | None = None
    notes: tuple[str, ...] = field(default=())


def format_value(value: float, unit: str) -> str:
    """A number as Grafana would print it for the units kvscale panels use."""
    if math.isnan(value):
        return "NaN"
    if unit == "percentunit":
        return f"{value * 100:.0f}%" if abs(value) >= 0.1 else f"{value * 100:.1f}%"
    if unit == "currencyUSD":
        return f"${value:,.2f}"
    if unit == "bool_yes_no":
        return "Yes" if value else "No"
    if unit == "bytes":
        for power, name in ((40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")):
            if abs(value) >= 2**power:
                return f"{value / 2**power:.1f} {name}"
        return f"{value:.0f} B"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if abs(value) < 1 else f"{value:.2f} s"
    suffix = {"watt": "W", "celsius": "°C", "hertz": "Hz", "reqps": "req/s"}.get(unit, "")
    space = " " if suffix else ""
    for scale, letter in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.1f}{space}{letter}{suffix}"
    return f"{value:.3g}{space}{suffix}"


def threshold_steps(panel: dict[str, Any]) -> list[tuple[float, str]]:
    """(value, color) of each non-base threshold step of a panel."""
    steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", [])
    return [(float(s["value"]), str(s["color"])) for s in steps if s.get("value") is not None]


def stat_color(value: float, panel: dict[str, Any]) -> str:
    """The color Grafana gives ``value``: the highest step at or below it, else the base."""
    steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", [])
    color = str(steps[0]["color"]) if steps else "green"
    for step in steps[1:]:
        if value >= float(step["value"]):
            color = str(step["color"])
    return COLORS.get(color, color)


def _unit(panel: dict[str, Any]) -> str:
    return str(panel.get("fieldConfig", {}).get("defaults", {}).get("unit", ""))


def _message(ax: Axes, text: str, color: str = COLORS["text"]) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, color=color, wrap=True, transform=ax.transAxes)


def _timeseries(ax: Axes, data: PanelData, legend: Axes, width_inches: float) -> None:
    unit = _unit(data.panel)
    for trace in data.traces:
        # A series with only a sample or two (a fresh Prometheus) is drawn as dots, not lost.
        marker = "o" if len(trace.times) < 3 else None
        ax.plot(trace.times, trace.values, linewidth=1.2, label=trace.name, marker=marker, markersize=3)
    times = [t for trace in data.traces for t in trace.times]
    if times and max(times) - min(times) < 60:
        # Matplotlib would stretch a near-empty time range over days; show the last minute.
        ax.set_xlim(max(times) - 60, max(times) + 2)
    time_axis(ax, times)
    mode = data.panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {}).get("thresholdsStyle", {})
    if mode.get("mode", "off") != "off":
        for value, color in threshold_steps(data.panel):
            ax.axhline(value, color=COLORS.get(color, color), linestyle="--", linewidth=1)
    defaults = data.panel.get("fieldConfig", {}).get("defaults", {})
    if data.traces and "min" in defaults:
        ax.set_ylim(bottom=defaults["min"])
    if data.traces and "max" in defaults:
        # A little headroom so a series sitting at the maximum (up = 1) is not hidden by the frame.
        ax.set_ylim(top=defaults["max"] * 1.04)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: format_value(v, unit)))
    ax.tick_params(labelsize=7)
    ax.grid(color=COLORS["grid"], linewidth=0.6)
    legend.set_axis_off()
    if data.traces:
        outside_legend(ax, legend, data.traces, width_inches)
    else:
        _message(ax, "no data")


def _stat(ax: Axes, data: PanelData) -> None:
    ax.set_axis_off()
    values = [v for trace in data.traces for v in trace.values if not math.isnan(v)]
    if not data.traces or not data.traces[0].values:
        _message(ax, "no data")
        return
    if len(data.traces) > 1:
        _tiles(ax, data)
        return
    last = data.traces[0].values[-1]
    ax.text(0.5, 0.45, format_value(last, _unit(data.panel)), ha="center", va="center", fontsize=20,
            fontweight="bold", color=stat_color(last, data.panel), transform=ax.transAxes)
    if len(values) > 1:
        spark = ax.inset_axes((0.0, 0.0, 1.0, 0.25))
        spark.fill_between(range(len(data.traces[0].values)), data.traces[0].values, alpha=0.2,
                           color=stat_color(last, data.panel))
        spark.set_axis_off()


def _tiles(ax: Axes, data: PanelData) -> None:
    """One named value per series, as Grafana's stat shows several (which HPA is broken, say)."""
    shown = [t for t in data.traces if t.values][:8]
    for i, trace in enumerate(shown):
        last = trace.values[-1]
        y = 1 - (i + 0.5) / len(shown)
        ax.text(0.02, y, trace.name, ha="left", va="center", fontsize=8, color=COLORS["text"], transform=ax.transAxes)
        ax.text(0.98, y, format_value(last, _unit(data.panel)), ha="right", va="center", fontsize=11,
                fontweight="bold", color=stat_color(last, data.panel), transform=ax.transAxes)


def _heatmap(ax: Axes, data: PanelData) -> None:
    if not data.traces:
        _message(ax, "no data")
        return
    heatmap(ax, data.traces)
    ax.tick_params(labelsize=7)


def _table(ax: Axes, data: PanelData) -> None:
    ax.set_axis_off()
    if not data.rows:
        _message(ax, "no data")
        return
    columns = sorted({key for row in data.rows for key in row})
    cells = [[row.get(col, "") for col in columns] for row in data.rows[:12]]
    table = ax.table(cellText=cells, colLabels=columns, loc="upper center", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(7)


def draw(title: str, panels: Sequence[PanelData], *, width_inches: float = 18.0) -> Figure:
    """A figure with every panel at its grid position, rows as section headings."""
    bottom = max((int(p.panel["gridPos"]["y"] + p.panel["gridPos"]["h"]) for p in panels), default=1)
    height = bottom * UNIT_INCHES + 0.6
    fig = Figure(figsize=(width_inches, height), facecolor="white")
    fig.suptitle(title, x=0.01, y=1 - 0.15 / height, ha="left", fontsize=13, fontweight="bold")
    top_margin = 0.5 / height
    for data in panels:
        pos = data.panel["gridPos"]
        left = pos["x"] / GRID_COLUMNS + 0.004
        top = 1 - top_margin - pos["y"] * UNIT_INCHES / height
        if data.panel["type"] == "row":
            fig.text(left, top - 0.5 * UNIT_INCHES / height, data.panel["title"], fontsize=11, fontweight="bold",
                     color=COLORS["text"], va="center")
            continue
        box_height = pos["h"] * UNIT_INCHES / height
        width = pos["w"] / GRID_COLUMNS - 0.05
        # Leave room left of the plot for y tick labels and below it for the time axis; a graph's legend gets
        # a strip of its own under that, outside the plot.
        strip = LEGEND_INCHES / height if data.panel["type"] == "timeseries" and data.error is None else 0.0
        ax = fig.add_axes((left + 0.04, top - box_height + 0.5 / height + strip, width,
                           box_height - 0.8 / height - strip))
        ax.set_title(data.panel["title"], fontsize=9, loc="left", color=COLORS["text"])
        if data.error is not None:
            ax.set_axis_off()
            _message(ax, f"query failed: {data.error[:160]}", COLORS["red"])
        elif data.panel["type"] == "stat":
            _stat(ax, data)
        elif data.panel["type"] == "table":
            _table(ax, data)
        elif data.panel["type"] == "heatmap":
            _heatmap(ax, data)
        else:
            legend = fig.add_axes((left + 0.01, top - box_height + 0.05 / height, width + 0.03, strip - 0.3 / height))
            _timeseries(ax, data, legend, width * width_inches)
    return fig
