"""The what-if table (what the README shows) and the PNG plot (matplotlib, the ``preview`` extra)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

from simulator.whatif.run import Result, Sample

HEADER = ("policy", "SLO-violation min", "p95 TTFT (s)", "GPU-hours", "$ per 1M tokens", "scaling events",
          "peak replicas")


def _num(value: float, digits: int) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def rows(results: Sequence[Result]) -> list[tuple[str, ...]]:
    return [(r.policy, str(r.slo_violation_minutes()), _num(r.p95_ttft(), 2), _num(r.gpu_hours, 2),
             _num(r.cost_per_million(), 3), str(len(r.events)), str(max((s.replicas for s in r.samples), default=0)))
            for r in results]


def table(results: Sequence[Result]) -> str:
    """A Markdown table, one row per policy, in the order run."""
    body = rows(results)
    widths = [max(len(h), *(len(row[i]) for row in body)) for i, h in enumerate(HEADER)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths, strict=True))) + " |"

    sep = "|" + "|".join("-" * (w + 1) + ("-" if i == 0 else ":") for i, w in enumerate(widths)) + "|"
    return "\n".join([line(HEADER), sep, *(line(row) for row in body)])


def plot(results: Sequence[Result], path: Path, *, slo: float, title: str) -> Path:
    """Replicas, queue, TTFT p95 and KV usage over time per policy; needs matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("the plot needs matplotlib: pip install 'kvscale[preview]'") from exc
    fig, axes = plt.subplots(4, 1, figsize=(11, 11), sharex=True)
    panels: tuple[tuple[str, Callable[[Sample], float | None], float | None], ...] = (
        ("replicas", lambda s: s.replicas, None), ("waiting requests (fleet)", lambda s: s.waiting, None),
              ("TTFT p95, worst pod (s)", lambda s: s.ttft_p95, slo), ("KV usage (mean)", lambda s: s.kv_usage, None))
    for ax, (label, get, line) in zip(axes, panels, strict=True):
        for r in results:
            xs = [s.at / 60 for s in r.samples]
            ys = [math.nan if (v := get(s)) is None else v for s in r.samples]
            ax.plot(xs, ys, label=r.policy, linewidth=1.2)
        if line is not None:
            ax.axhline(line, color="red", linestyle="--", linewidth=0.8, label="SLO")
            ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize=8, ncol=4)
    axes[-1].set_xlabel("minutes")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
