"""Static preview: each dashboard's panels drawn to a PNG from a live Prometheus's data.

So a reviewer can see the dashboards without a Grafana. Queries run with the
dashboard variables substituted (``.*`` = All by default); a failing query is drawn
on its panel and logged, never fatal, so one bad panel does not hide the rest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from dashboards.build import all_panels
from dashboards.prom_client import PrometheusError, Series
from dashboards.promql import legend, panel_queries, substitute
from dashboards.render import PanelData, Trace, draw

log = logging.getLogger(__name__)

ALL = ".*"


class QueryApi(Protocol):
    def query_range(self, expr: str, *, start: float, end: float, step: float) -> list[Series]: ...

    def query(self, expr: str, *, at: float) -> list[Series]: ...


@dataclass(frozen=True)
class PreviewSettings:
    """What window to draw and which variable values to query with."""

    minutes: float = 15.0
    """How far back from now the panels reach."""
    points: int = 120
    """Samples per series; the step is the window over this."""
    rate_interval: str = "1m"
    """Stands in for $__rate_interval: at least four scrape intervals of the Prometheus read."""
    variables: Mapping[str, str] = field(default_factory=lambda: {
        "cluster": ALL, "namespace": ALL, "model": ALL, "pod": ALL, "node": ALL})

    def values(self) -> dict[str, str]:
        step = self.step()
        return {**self.variables, "__rate_interval": self.rate_interval, "__interval": f"{step:g}s",
                "__range": f"{int(self.minutes * 60)}s"}

    def step(self) -> float:
        return max(1.0, self.minutes * 60 / self.points)


def _trace_name(series: Series, fmt: str, ref_id: str) -> str:
    fallback = ",".join(f"{k}={v}" for k, v in sorted(series.labels.items()) if k != "__name__") or ref_id
    return legend(fmt, series.labels, fallback)


def fetch_panel(panel: dict[str, Any], api: QueryApi, settings: PreviewSettings, *, end: float) -> PanelData:
    """Run a panel's queries and shape the answers for drawing; an error becomes the panel's content."""
    values = settings.values()
    traces: list[Trace] = []
    rows: list[dict[str, str]] = []
    try:
        for query in panel_queries({"panels": [panel]}):
            expr = substitute(query.expr, values)
            if panel["type"] == "table":
                for series in api.query(expr, at=end):
                    labels = {k: v for k, v in series.labels.items() if k not in ("__name__", "job", "instance")}
                    rows.append({**labels, "Value": f"{series.points[-1][1]:g}"} if series.points else labels)
                continue
            start = end - settings.minutes * 60
            for series in api.query_range(expr, start=start, end=end, step=settings.step()):
                traces.append(Trace(_trace_name(series, query.legend, query.ref_id),
                                    tuple(t for t, _ in series.points), tuple(v for _, v in series.points)))
    except (PrometheusError, KeyError) as exc:
        log.warning("panel %r: %s", panel.get("title"), exc)
        return PanelData(panel=panel, error=str(exc))
    return PanelData(panel=panel, traces=tuple(traces), rows=tuple(rows))


def render_dashboard(dash: dict[str, Any], api: QueryApi, settings: PreviewSettings, out: Path,
                     *, end: float | None = None) -> tuple[Path, list[PanelData]]:
    """Draw ``dash`` into ``out`` (a PNG path); returns it and each panel's data."""
    at = time.time() if end is None else end
    panels = [PanelData(panel=p) if p["type"] == "row" else fetch_panel(p, api, settings, end=at)
              for p in all_panels(dash)]
    figure = draw(str(dash.get("title", "")), panels)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=90)
    return out, panels


def render_all(dashboards: Mapping[str, dict[str, Any]], api: QueryApi, settings: PreviewSettings,
               out_dir: Path) -> dict[str, list[PanelData]]:
    """One PNG per dashboard, named after its file stem; returns each dashboard's panel data."""
    end = time.time()
    return {stem: render_dashboard(dash, api, settings, out_dir / f"{stem}.png", end=end)[1]
            for stem, dash in dashboards.items()}
