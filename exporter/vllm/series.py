"""Project one target's window onto the ``kvscale_vllm_*`` series (pure).

Absent beats invented: a quantity that cannot be known from the window (no
observation, no token, no cache config) yields no series, and a target that is
down yields ``up 0`` and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.collector import Series
from exporter.contract.policy import Policy
from exporter.vllm import derive
from exporter.vllm.targets import Target
from exporter.vllm.window import History, Observation, counter_increase, counter_rate, window_quantiles

LATENCY_FAMILIES = {
    "ttft": "kvscale_vllm_ttft_seconds",
    "itl": "kvscale_vllm_inter_token_latency_seconds",
    "e2e": "kvscale_vllm_e2e_latency_seconds",
    "queue": "kvscale_vllm_queue_time_seconds",
}
RATE_FAMILIES = {
    "prompt_tokens": "kvscale_vllm_prompt_tokens_per_second",
    "generation_tokens": "kvscale_vllm_generation_tokens_per_second",
    "preemptions": "kvscale_vllm_preemptions_per_second",
    "admission_rejections": "kvscale_vllm_admission_rejections_per_second",
}


@dataclass(frozen=True)
class VllmPolicy:
    """What the derivations need from the settings."""

    window_seconds: float
    quantiles: tuple[float, ...]
    thresholds: Policy  # saturation reads kv_target, queue_target, ttft_p95_slo_seconds
    gpu_price_per_hour: float | None
    default_gpus_per_pod: float
    min_span_seconds: float = 0.0
    """Windowed families are absent until the readings span this long (after a restart of the
    exporter or the target's first scrape): a rate over two samples a second apart is not the window's."""


def pod_series(target: Target, *, up: bool, models: tuple[str, ...], history: History,
               policy: VllmPolicy, gpus: float) -> list[Series]:
    out: list[Series] = []
    for model in models:
        labels = {"namespace": target.namespace, "pod": target.pod, "model_name": model}
        out.append(Series("kvscale_vllm_up", labels, 1.0 if up else 0.0))
        if up:
            out.extend(_model_series(labels, model, history, policy, gpus))
    return out


def _model_series(labels: dict[str, str], model: str, history: History, policy: VllmPolicy,
                  gpus: float) -> list[Series]:
    out: list[Series] = []

    def emit(family: str, value: float | None, **extra: str) -> None:
        if value is not None:
            out.append(Series(family, {**labels, **extra} if extra else labels, value))

    latest = history.latest()
    if latest is None:
        return out
    gauges = derive.fold(derive.engine_states(latest.reading, model))
    emit("kvscale_vllm_requests_running", gauges.running)
    emit("kvscale_vllm_requests_waiting", gauges.waiting)
    emit("kvscale_vllm_kv_cache_usage_ratio", gauges.kv_usage)
    emit("kvscale_vllm_kv_cache_capacity_tokens", gauges.capacity_tokens)
    emit("kvscale_vllm_kv_cache_fragmentation_ratio", gauges.fragmentation)

    span = history.span()
    if span[-1].at - span[0].at < policy.min_span_seconds:
        span = span[-1:]  # too short to stand for the window: every windowed family is absent
    ttft_p95: float | None = None
    plugin = latest.reading.plugin.get(model)
    for short, family in LATENCY_FAMILIES.items():
        wanted = (*policy.quantiles, 0.95) if short == "ttft" and 0.95 not in policy.quantiles else policy.quantiles
        exact = plugin.latencies.get(short) if plugin else None
        emit("kvscale_vllm_latency_source_info", 1.0, latency=short,
             source="histogram" if exact is None else "plugin")
        for q, value in _quantiles(span, model, short, wanted, exact).items():
            if q in policy.quantiles:
                emit(family, value, quantile=_format_quantile(q))
            if short == "ttft" and q == 0.95:
                ttft_p95 = value  # saturation's TTFT term, whatever quantiles are exported
    rates = {short: counter_rate(span, model, short) for short in RATE_FAMILIES}
    for short, family in RATE_FAMILIES.items():
        emit(family, rates[short])
    emit("kvscale_vllm_prefix_cache_hit_ratio", derive.hit_ratio(
        counter_increase(span, model, "prefix_hits"), counter_increase(span, model, "prefix_queries")))

    tokens = None
    if rates["prompt_tokens"] is not None or rates["generation_tokens"] is not None:
        tokens = (rates["prompt_tokens"] or 0.0) + (rates["generation_tokens"] or 0.0)
    emit("kvscale_vllm_cost_per_million_tokens_dollars", derive.cost_per_million_tokens(
        price_per_gpu_hour=policy.gpu_price_per_hour, gpus=gpus, tokens_per_second=tokens))

    th = policy.thresholds
    emit("kvscale_vllm_saturation_ratio", derive.saturation(
        kv_usage=gauges.kv_usage, waiting=gauges.waiting, ttft_p95=ttft_p95,
        kv_target=th.kv_target, queue_target=th.queue_target, ttft_slo=th.ttft_p95_slo_seconds))
    return out


def _quantiles(span: list[Observation], model: str, short: str, wanted: tuple[float, ...],
               exact: dict[float, float] | None) -> dict[float, float]:
    """The plugin's exact values where it serves this latency (none when its window is empty), each
    quantile it does not serve from the histogram; the histogram alone without the plugin."""
    if exact is None:
        return window_quantiles(span, model, short, wanted)
    if not exact:
        return {}
    missing = [q for q in wanted if q not in exact]
    interpolated = window_quantiles(span, model, short, missing) if missing else {}
    return {q: exact[q] if q in exact else interpolated[q] for q in wanted if q in exact or q in interpolated}


def _format_quantile(q: float) -> str:
    """'0.5', '0.95': the shortest spelling, as Prometheus summaries use."""
    return repr(float(q))
