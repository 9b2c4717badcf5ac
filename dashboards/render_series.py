"""Series drawing that stays readable with many pods: legends outside the plot, few time labels, heatmaps.

A Grafana panel keeps its legend in a table under the graph; the preview does the same in a strip of
its own, listing the series with the highest last value first and counting the rest, so forty pods
never cover the lines. Time labels are at most ``MAX_TIME_LABELS``, so they never overlap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from matplotlib.axes import Axes
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator

if TYPE_CHECKING:  # render imports this module
    from dashboards.render import Trace

MAX_TIME_LABELS = 4
LEGEND_ROWS = 3
LEGEND_COLUMN_INCHES = 2.2  # room for a pod name and its value at legend size


def time_axis(ax: Axes, times: Sequence[float]) -> None:
    """At most MAX_TIME_LABELS labels; seconds only when the range is short enough to need them."""
    span = (max(times) - min(times)) if times else 0.0
    ax.xaxis.set_major_locator(MaxNLocator(nbins=MAX_TIME_LABELS - 1, steps=[1, 2, 3, 5, 6, 10]))
    layout = "%H:%M:%S" if span < 600 else "%H:%M"
    ax.xaxis.set_major_formatter(FuncFormatter(lambda t, _pos: datetime.fromtimestamp(t, UTC).strftime(layout)))


def _last(trace: Trace) -> float:
    values = [v for v in trace.values if not math.isnan(v)]
    return values[-1] if values else -math.inf


def outside_legend(ax: Axes, strip: Axes, traces: Sequence[Trace], width_inches: float) -> int:
    """The legend of ``ax`` drawn in ``strip`` (under the plot), highest last value first; returns how many
    series it leaves out (named as "+N more")."""
    strip.set_axis_off()
    handles = dict(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    columns = max(1, int(width_inches // LEGEND_COLUMN_INCHES))
    room = columns * LEGEND_ROWS
    ranked = sorted(traces, key=_last, reverse=True)
    shown = ranked if len(ranked) <= room else ranked[: room - 1]
    labels = [t.name for t in shown if t.name in handles]
    items = [handles[name] for name in labels]
    left_out = len(ranked) - len(shown)
    if left_out:
        items.append(ax.plot([], [], linestyle="none")[0])
        labels.append(f"+{left_out} more")
    strip.legend(items, labels, loc="upper left", ncols=columns, fontsize=6, frameon=False,
                 borderaxespad=0, handlelength=1.2, columnspacing=1.0)
    return left_out


def heatmap(ax: Axes, traces: Sequence[Trace]) -> None:
    """Prometheus buckets (cumulative, one trace per ``le``) as Grafana draws them: per-bucket counts, one
    row per bucket, time across."""
    def bound(trace: Trace) -> float:
        return math.inf if trace.name in ("+Inf", "inf") else float(trace.name)

    rows = sorted((t for t in traces if _is_bound(t.name)), key=bound)
    if not rows:
        return
    width = min(len(t.values) for t in rows)
    cumulative = [[0.0 if math.isnan(v) else v for v in t.values[:width]] for t in rows]
    counts = [[max(0.0, cur - below) for cur, below in zip(row, [0.0] * width if i == 0 else cumulative[i - 1],
                                                           strict=True)]
              for i, row in enumerate(cumulative)]
    ax.imshow(counts, aspect="auto", origin="lower", cmap="Oranges", interpolation="nearest",
              extent=(rows[0].times[0], rows[0].times[width - 1], -0.5, len(rows) - 0.5))
    ax.yaxis.set_major_locator(FixedLocator(range(len(rows))))
    ax.set_yticklabels([t.name for t in rows], fontsize=6)
    time_axis(ax, rows[0].times[:width])


def _is_bound(name: str) -> bool:
    try:
        float(name)
    except ValueError:
        return name in ("+Inf", "inf")
    return True
