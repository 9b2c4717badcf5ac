"""The demo's PNG: replicas, queue depth, TTFT p95 and KV usage over simulated time, with the
policy's lines, the HPA's scaling events, the spike, the breach and the alerts that fired."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulator.demo_summary import Summary, Timeline, per_minute_p95


def plot(timeline: Timeline, summary: Summary, path: Path, *, slo: float, kv_target: float, kv_alert: float,
         queue_target: float, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    samples = timeline.samples
    minutes = [s.t / 60 for s in samples]
    fig, axes = plt.subplots(4, 1, figsize=(11, 10), sharex=True, constrained_layout=True)
    ax_rep, ax_q, ax_ttft, ax_kv = axes

    ax_rep.step(minutes, [s.replicas for s in samples], where="post", label="replicas (desired)", color="tab:blue")
    ax_rep.step(minutes, [s.ready for s in samples], where="post", label="ready", color="tab:green", linestyle="--")
    ax_rep.set_ylabel("replicas")
    ax_rep.set_ylim(bottom=0)

    def series(attr: str) -> tuple[list[float], list[float]]:
        pts = [(s.t / 60, getattr(s, attr)) for s in samples if getattr(s, attr) is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    ax_q.plot(*series("waiting"), color="tab:orange", label="requests waiting (sum)")
    ax_q.axhline(queue_target * max(1, summary.replicas_start), color="tab:orange", linestyle=":", linewidth=1,
                 label=f"queue target x {summary.replicas_start} pods")
    ax_q.set_ylabel("queue")

    ax_ttft.plot(*series("ttft_p95"), color="tab:purple", label="TTFT p95 (exporter, worst pod)")
    per_minute = per_minute_p95(timeline.served)
    ax_ttft.plot([m + 0.5 for m in per_minute], list(per_minute.values()), "o", color="black", markersize=3,
                 label="TTFT p95 of each minute's requests")
    ax_ttft.axhline(slo, color="red", linestyle="--", linewidth=1, label=f"SLO {slo:g} s")
    ax_ttft.set_ylabel("seconds")
    ax_ttft.set_yscale("symlog", linthresh=1.0)
    ax_ttft.set_ylim(bottom=0)

    ax_kv.plot(*series("kv_usage"), color="tab:brown", label="KV-cache usage (mean)")
    ax_sat = ax_kv.twinx()
    ax_sat.plot(*series("saturation"), color="tab:gray", linewidth=1)
    ax_sat.axhline(1.0, color="tab:gray", linestyle=":", linewidth=1)
    ax_sat.set_yscale("symlog", linthresh=1.0)
    ax_sat.set_ylim(bottom=0)
    ax_sat.set_ylabel("saturation (mean; HPA target 1)", color="tab:gray", fontsize=8)
    ax_kv.axhline(kv_target, color="tab:brown", linestyle=":", linewidth=1, label=f"KV target {kv_target:g}")
    ax_kv.axhline(kv_alert, color="red", linestyle="--", linewidth=1, label=f"KV alert {kv_alert:g}")
    ax_kv.set_ylabel("KV usage")
    ax_kv.set_ylim(0, 1.05)
    ax_kv.set_xlabel("simulated minutes")

    _marks(axes, timeline, summary)
    if summary.breach_at is not None:
        ax_rep.annotate("breach", (summary.breach_at / 60, 0), xytext=(3, 5), textcoords="offset points",
                        fontsize=8, color="red")
        ax_rep.axvline(summary.breach_at / 60, color="red", linewidth=1)
    if summary.serving_at is not None:
        ax_rep.axvline(summary.serving_at / 60, color="tab:green", linewidth=1)
    fired_names = sorted({a.name for a in timeline.alerts if a.fired_at is not None})
    pending = len({a.name for a in timeline.alerts} - set(fired_names))
    ax_rep.set_title(f"{title}\nshaded: alerts pending (yellow) or firing (red); fired: "
                     f"{', '.join(fired_names) or 'none'}; {pending} more pending only", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _marks(axes: Any, timeline: Timeline, summary: Summary) -> None:
    """The spike, each scaling event (dash-dot up, dotted down) and each alert's span on every panel."""
    for ax in axes:
        ax.axvline(summary.spike_at / 60, color="black", linewidth=0.8, alpha=0.6)
        for e in timeline.events:
            up = e.after > e.before
            ax.axvline(e.t / 60, color="tab:blue" if up else "tab:cyan", linewidth=0.8, linestyle="-." if up else ":",
                       alpha=0.8)
        for start, end in _union([(a.pending_at, a.resolved_at or summary.duration) for a in timeline.alerts]):
            ax.axvspan(start / 60, end / 60, color="gold", alpha=0.15)  # some alert pending (or firing)
        fired = [(a.fired_at, a.resolved_at or summary.duration) for a in timeline.alerts if a.fired_at is not None]
        for start, end in _union(fired):
            ax.axvspan(start / 60, end / 60, color="red", alpha=0.12)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=7)
        ax.set_xlim(0, summary.duration / 60)


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
