"""What the demo measured: the timeline it recorded and the summary derived from it (pure).

Times are simulated seconds. The threshold is the HPA's target on the metric it scales on
(kvscale's saturation ratio, 1.0 = at policy); a breach is the first sample after the spike
starts where the fleet's mean saturation, as the exporters report it, goes above it. The new
replicas are serving when the last replica the first scale-up after the breach created is ready.
Latency minutes come from the requests themselves (time to first token of each request), not from
the exporter's windowed quantile, so they are what users saw.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Sample:
    """The fleet at ``t``, through the exporters (None: no pod reported the signal)."""

    t: float
    replicas: int
    ready: int
    waiting: float | None = None
    kv_usage: float | None = None
    ttft_p95: float | None = None
    saturation: float | None = None


@dataclass(frozen=True)
class ScalingEvent:
    t: float
    before: int
    after: int
    reason: str
    ready_at: float | None = None  # when the last replica this event created was ready (scale-ups)


@dataclass(frozen=True)
class AlertSpan:
    """An alert from its first pending evaluation until it cleared; ``fired_at`` None: its ``for:``
    never elapsed (the condition cleared while pending)."""

    name: str
    pending_at: float
    fired_at: float | None = None
    resolved_at: float | None = None
    pod: str = ""


@dataclass(frozen=True)
class Served:
    """One request that got its first token: when, after how long, and its tokens."""

    first_token_at: float
    ttft: float
    tokens: int


@dataclass
class Timeline:
    samples: list[Sample] = field(default_factory=list)
    events: list[ScalingEvent] = field(default_factory=list)
    alerts: list[AlertSpan] = field(default_factory=list)
    served: list[Served] = field(default_factory=list)


@dataclass(frozen=True)
class Summary:
    duration: float
    spike_at: float
    breach_at: float | None
    scale_up_at: float | None
    serving_at: float | None
    replicas_start: int
    replicas_peak: int
    replicas_end: int
    peak_ttft_p95: float | None
    minutes_above_slo: int
    minutes_measured: int
    gpu_hours: float
    tokens: int
    cost_per_million_tokens: float | None
    alerts: tuple[AlertSpan, ...]
    scaling_events: int

    @property
    def breach_to_serving(self) -> float | None:
        if self.breach_at is None or self.serving_at is None:
            return None
        return self.serving_at - self.breach_at

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["breach_to_serving_seconds"] = self.breach_to_serving
        return out


def _p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]  # nearest rank


def per_minute_p95(served: Sequence[Served]) -> dict[int, float]:
    """p95 TTFT of the requests whose first token came in each simulated minute."""
    by_minute: dict[int, list[float]] = defaultdict(list)
    for s in served:
        by_minute[int(s.first_token_at // 60)].append(s.ttft)
    return {m: _p95(v) for m, v in sorted(by_minute.items())}


def summarize(timeline: Timeline, *, duration: float, spike_at: float, threshold: float, slo: float,
              gpu_seconds: float, price_per_gpu_hour: float) -> Summary:
    samples = timeline.samples
    breach = next((s.t for s in samples if s.t >= spike_at and s.saturation is not None
                   and s.saturation > threshold), None)
    first_up = None if breach is None else next(
        (e for e in timeline.events if e.t >= breach and e.after > e.before), None)
    minutes = per_minute_p95(timeline.served)
    tokens = sum(s.tokens for s in timeline.served)
    gpu_hours = gpu_seconds / 3600.0
    replicas = [s.replicas for s in samples] or [0]
    return Summary(
        duration=duration, spike_at=spike_at, breach_at=breach,
        scale_up_at=first_up.t if first_up else None,
        serving_at=first_up.ready_at if first_up else None,
        replicas_start=replicas[0], replicas_peak=max(replicas), replicas_end=replicas[-1],
        peak_ttft_p95=max(minutes.values()) if minutes else None,
        minutes_above_slo=sum(1 for v in minutes.values() if v > slo), minutes_measured=len(minutes),
        gpu_hours=gpu_hours, tokens=tokens,
        cost_per_million_tokens=gpu_hours * price_per_gpu_hour / tokens * 1e6 if tokens else None,
        alerts=tuple(timeline.alerts), scaling_events=len(timeline.events))


def _s(value: float | None, unit: str = " s") -> str:
    return "n/a" if value is None else f"{value:.0f}{unit}"


def report(summary: Summary, *, slo: float) -> list[str]:
    """The summary as lines for the terminal and summary.txt."""
    s = summary
    lines = [f"simulated {s.duration / 60:.1f} min; spike at {s.spike_at:.0f} s; "
             f"replicas {s.replicas_start} -> peak {s.replicas_peak} -> {s.replicas_end} ({s.scaling_events} "
             f"scaling events)"]
    if s.breach_at is None:
        lines.append("threshold never breached: no scale-up was needed")
    else:
        detect = None if s.scale_up_at is None else s.scale_up_at - s.breach_at
        cold = None if s.serving_at is None or s.scale_up_at is None else s.serving_at - s.scale_up_at
        lines.append(f"threshold breach -> new replicas serving: {_s(s.breach_to_serving)} "
                     f"(breach at {s.breach_at:.0f} s; HPA scale-up {_s(detect)} later; cold start {_s(cold)}; "
                     f"operators quote 60-90 s)")
    peak = "n/a" if s.peak_ttft_p95 is None else f"{s.peak_ttft_p95:.2f} s"
    lines.append(f"TTFT p95 per minute: peak {peak}; above the {slo:g} s SLO in {s.minutes_above_slo} of "
                 f"{s.minutes_measured} minutes")
    cost = "n/a" if s.cost_per_million_tokens is None else f"${s.cost_per_million_tokens:.3f}"
    lines.append(f"GPU-hours {s.gpu_hours:.2f}; {s.tokens:,} tokens; cost per 1M tokens {cost}")
    lines.extend(alert_lines(s.alerts))
    return lines


def alert_lines(alerts: Sequence[AlertSpan]) -> list[str]:
    """One line per alert name and outcome (fired, or pending only), with its pods and times."""
    if not alerts:
        return ["alerts: none pending or fired"]
    groups: dict[tuple[str, bool], list[AlertSpan]] = defaultdict(list)
    for a in alerts:
        groups[(a.name, a.fired_at is not None)].append(a)
    lines = []
    for (name, fired), spans in sorted(groups.items(), key=lambda kv: min(a.pending_at for a in kv[1])):
        pods = sorted({a.pod for a in spans if a.pod})
        who = f"alert {name}" + (f" on {len(pods)} pod{'s' if len(pods) > 1 else ''}" if pods else "")
        first = min(a.pending_at for a in spans)
        ends = [a.resolved_at for a in spans]
        end = "still active at the end" if None in ends else f"last cleared at {max(e for e in ends if e):.0f} s"
        if fired:
            fired_at = min(a.fired_at for a in spans if a.fired_at is not None)
            lines.append(f"{who}: pending at {first:.0f} s, FIRED at {fired_at:.0f} s, {end}")
        else:
            lines.append(f"{who}: pending from {first:.0f} s, never fired (its for: did not elapse), {end}")
    return lines
