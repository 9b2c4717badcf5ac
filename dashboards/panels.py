"""Panel builders with the house style: Prometheus targets, threshold lines, runbook links.

Every panel takes its queries as ``Query`` values and its threshold lines as ``Line``
values computed from the thresholds object, so a panel module reads as a list of
questions an on-call engineer asks, not as builder chains.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import heatmap, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from dashboards.common import DATASOURCE, engine_drilldown, runbook_link

# Grafana's named colors: the base step and the two levels a threshold can mean.
OK, WARN, BAD = "green", "orange", "red"


@dataclass(frozen=True)
class Query:
    """One PromQL target; ``legend`` is a Grafana legend format such as ``{{pod}}``."""

    expr: str
    legend: str = ""
    instant: bool = False


@dataclass(frozen=True)
class Line:
    """A threshold line: at ``value`` the panel turns ``color`` (dashed line on time series)."""

    value: float
    color: str = BAD


def _targets(queries: Sequence[Query], fmt: PromQueryFormat | None = None) -> list[prometheus.Dataquery]:
    found = []
    for index, query in enumerate(queries):
        target = prometheus.Dataquery().expr(query.expr).ref_id(chr(ord("A") + index)).datasource(DATASOURCE)
        if fmt is not None:
            target = target.format(fmt)
        if query.legend:
            target = target.legend_format(query.legend)
        found.append(target.instant() if query.instant else target.range())
    return found


def _thresholds(lines: Sequence[Line], base: str = OK) -> db.ThresholdsConfig:
    steps = [model.Threshold(value=None, color=base)]
    steps += [model.Threshold(value=line.value, color=line.color) for line in sorted(lines, key=lambda x: x.value)]
    return db.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(steps)


def timeseries_panel(
    title: str,
    queries: Sequence[Query],
    *,
    description: str,
    unit: str,
    lines: Sequence[Line] = (),
    runbooks: Sequence[str] = (),
    span: int = 12,
    height: int = 8,
    min_val: float | None = 0,
    max_val: float | None = None,
    stacked: bool = False,
    drilldown: bool = False,
) -> timeseries.Panel:
    """A time series; threshold lines are dashed so they read as policy, not data."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(list(_targets(queries)))
        .unit(unit)
        .span(span)
        .height(height)
        .color_scheme(db.FieldColor().mode(model.FieldColorModeId.PALETTE_CLASSIC))
        .line_width(1)
        .fill_opacity(10 if stacked else 0)
        .show_points(cm.VisibilityMode.NEVER)
        .legend(cb.VizLegendOptions().display_mode(cm.LegendDisplayMode.TABLE)
                .placement(cm.LegendPlacement.BOTTOM).show_legend(True).calcs(["lastNotNull", "max"]))
        .tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING))
        .thresholds(_thresholds(lines))
        .thresholds_style(cb.GraphThresholdsStyleConfig().mode(
            cm.GraphThresholdsStyleMode.DASHED if lines else cm.GraphThresholdsStyleMode.OFF))
    )
    if stacked:
        panel = panel.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
    if min_val is not None:
        panel = panel.min(min_val)
    if max_val is not None:
        panel = panel.max(max_val)
    if runbooks:
        panel = panel.links([runbook_link(alert) for alert in runbooks])
    if drilldown:
        panel = panel.data_links([engine_drilldown()])
    return panel


def stat_panel(
    title: str,
    query: Query,
    *,
    description: str,
    unit: str,
    lines: Sequence[Line] = (),
    runbooks: Sequence[str] = (),
    span: int = 4,
    height: int = 4,
    decimals: int | None = None,
    base: str = OK,
    text_mode: str = "auto",
) -> stat.Panel:
    """A single number colored by the thresholds, with a sparkline of its recent past.

    ``text_mode="value_and_name"`` shows one named tile per series: a stat that lists what is broken."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(list(_targets([query])))
        .unit(unit)
        .span(span)
        .height(height)
        .color_scheme(db.FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
        .color_mode(cm.BigValueColorMode.VALUE)
        .graph_mode(cm.BigValueGraphMode.AREA)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(_thresholds(lines, base))
        .no_value("no data")
        .text_mode(cm.BigValueTextMode(text_mode))
    )
    if decimals is not None:
        panel = panel.decimals(decimals)
    if runbooks:
        panel = panel.links([runbook_link(alert) for alert in runbooks])
    return panel


def table_panel(
    title: str, query: Query, *, description: str, hidden: Sequence[str] = ("Time", "Value"), span: int = 24,
    height: int = 6,
) -> table.Panel:
    """The latest value of each series as a row of its labels (who holds which GPU, say)."""
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(list(_targets([Query(query.expr, query.legend, instant=True)], PromQueryFormat.TABLE)))
        .span(span)
        .height(height)
        .with_transformation(model.DataTransformerConfig(
            id_val="organize", options={"excludeByName": {name: True for name in hidden}}))
    )


def heatmap_panel(title: str, query: Query, *, description: str, unit: str, span: int = 12,
                  height: int = 8) -> heatmap.Panel:
    """A distribution over time from a histogram's per-bucket increases (``le`` in the legend), as Grafana
    draws Prometheus buckets: no recalculation, one row per bucket."""
    return (
        heatmap.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(list(_targets([Query(query.expr, query.legend or "{{le}}")], PromQueryFormat.HEATMAP)))
        .calculate(False)
        .unit(unit)
        .span(span)
        .height(height)
    )


def row(title: str) -> db.Row:
    return db.Row(title)


PanelBuilder = cogbuilder.Builder[model.Panel]
Section = tuple[str, Sequence[PanelBuilder]]


def layout(dash: db.Dashboard, sections: Sequence[Section]) -> db.Dashboard:
    """Each section as an open row followed by its panels; the SDK flows them onto the 24-wide grid."""
    for title, panels in sections:
        dash = dash.with_row(row(title))
        for panel in panels:
            dash = dash.with_panel(panel)
    return dash
