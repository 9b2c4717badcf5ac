"""The demo's live terminal view: the fleet as the exporters report it, the HPA's last decision,
alerts, and how far through the scenario it is (rich). ``pod_rows`` and ``fleet_sample`` are pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from exporter.contract.exposition import parse
from simulator.demo_summary import Sample

COLUMNS = (
    ("up", "kvscale_vllm_up", None), ("running", "kvscale_vllm_requests_running", None),
    ("waiting", "kvscale_vllm_requests_waiting", None), ("kv", "kvscale_vllm_kv_cache_usage_ratio", None),
    ("frag", "kvscale_vllm_kv_cache_fragmentation_ratio", None), ("ttft p95", "kvscale_vllm_ttft_seconds", "0.95"),
    ("gen tok/s", "kvscale_vllm_generation_tokens_per_second", None),
    ("$/1M tok", "kvscale_vllm_cost_per_million_tokens_dollars", None),
    ("saturation", "kvscale_vllm_saturation_ratio", None),
)
HEADERS = tuple(h for h, _, _ in COLUMNS)


def pod_rows(body: str) -> dict[str, dict[str, float]]:
    """Per-pod signals from an exporter /metrics body, by column header."""
    exposition = parse(body)
    rows: dict[str, dict[str, float]] = {}
    for header, name, quantile in COLUMNS:
        for labels, value in exposition.samples.get(name, []):
            if quantile is None or labels.get("quantile") == quantile:
                rows.setdefault(labels.get("pod", "?"), {})[header] = value
    return rows


def table(body: str) -> str:
    """The per-pod signals as plain text, one row per pod (for logs and non-terminal output)."""
    rows = pod_rows(body)
    lines = ["pod      " + "".join(f"{h:>11}" for h in HEADERS)]
    for pod in sorted(rows):
        cells = "".join(f"{rows[pod][h]:>11.4g}" if h in rows[pod] else f"{'-':>11}" for h in HEADERS)
        lines.append(f"{pod:<9}{cells}")
    return "\n".join(lines)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def fleet_sample(t: float, replicas: int, ready: int, rows: Mapping[str, Mapping[str, float]]) -> Sample:
    """The fleet from per-pod rows of serving pods (``up`` 1): queue summed, KV and saturation averaged
    (what the HPA averages), TTFT p95 the worst pod."""
    serving = [r for r in rows.values() if r.get("up") == 1]

    def col(name: str) -> list[float]:
        return [r[name] for r in serving if name in r]

    waiting, ttft = col("waiting"), col("ttft p95")
    return Sample(t=t, replicas=replicas, ready=ready, waiting=sum(waiting) if waiting else None,
                  kv_usage=_mean(col("kv")), ttft_p95=max(ttft) if ttft else None,
                  saturation=_mean(col("saturation")))


@dataclass
class ViewState:
    t: float = 0.0
    total: float = 1.0
    phase: str = ""
    replicas: int = 0
    sample: Sample | None = None
    pods: dict[str, dict[str, float]] = field(default_factory=dict)
    pod_states: dict[str, str] = field(default_factory=dict)  # cold start / serving / draining
    decision: str = ""
    firing: list[str] = field(default_factory=list)
    rate: float = 0.0
    speed: float = 1.0


def _fmt(value: float | None, spec: str = ".2f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def render(state: ViewState) -> RenderableType:
    s = state.sample
    head = Table.grid(padding=(0, 2))
    head.add_row(Text(f"t = {state.t:6.0f} s simulated ({state.speed:g}x)", style="bold"),
                 Text(f"{state.phase}: {state.rate:.0f} req/s"),
                 Text(f"replicas {state.replicas} (ready {s.ready if s else 0})", style="bold cyan"))
    head.add_row(Text(f"queue {_fmt(s.waiting if s else None, '.0f')}"),
                 Text(f"KV usage {_fmt(s.kv_usage if s else None)}"),
                 Text(f"TTFT p95 {_fmt(s.ttft_p95 if s else None)} s"),
                 Text(f"saturation {_fmt(s.saturation if s else None)}",
                      style="bold red" if s and s.saturation and s.saturation > 1 else ""))
    pods = Table(box=None, header_style="dim", pad_edge=False)
    pods.add_column("pod")
    pods.add_column("state")
    for header in HEADERS[1:]:
        pods.add_column(header, justify="right")
    for name in sorted(state.pod_states):
        row = state.pods.get(name, {})
        cells = [_fmt(row.get(h), ".3g") for h in HEADERS[1:]]
        pods.add_row(name, state.pod_states[name], *cells)
    alerts = Text("alerts: " + (", ".join(state.firing) if state.firing else "none firing"),
                  style="bold yellow" if state.firing else "dim")
    bar = ProgressBar(total=state.total, completed=min(state.t, state.total), width=60)
    return Group(head, pods, Text(f"HPA: {state.decision}"), alerts, bar)
