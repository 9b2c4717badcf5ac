"""What users feel: latency SLOs (TTFT, inter-token, end-to-end) and the share of requests that fail.

Latency alerts read the exporter's windowed p95 per pod and apply a traffic floor: a pod that
finished fewer than ``slo_min_requests_per_second`` (from vLLM's ``request_success_total``, when
Prometheus scrapes vLLM) has too few requests for its p95 to page anyone. Without that series the
floor cannot be applied and the alert reads the p95 alone (``unless`` removes nothing).
Error and abort shares come from vLLM's own counter by ``finished_reason``, through the recording
rules: the exporter does not carry request outcomes, so these alerts need Prometheus to scrape vLLM.
"""

from __future__ import annotations

from dataclasses import dataclass

from alerts.model import Alert
from alerts.promql import duration, kvscale, number
from alerts.recording import model_labels, request_rate
from exporter.contract.catalog import QUANTILES
from exporter.contract.policy import Policy

TTFT_OVER_SLO = "KvscaleTTFTOverSLO"
ITL_OVER_SLO = "KvscaleInterTokenLatencyOverSLO"
E2E_OVER_SLO = "KvscaleE2ELatencyOverSLO"
REQUEST_ERRORS = "KvscaleRequestErrors"
REQUEST_ABORTS = "KvscaleRequestAborts"

SLO_QUANTILE = 0.95
if SLO_QUANTILE not in QUANTILES:
    raise ImportError(f"the latency SLOs read quantile {SLO_QUANTILE}, which the exporter does not emit")

_POD = "{{ $labels.namespace }}/{{ $labels.pod }} ({{ $labels.model_name }})"
_MODEL = "{{ $labels.namespace }}/{{ $labels.model_name }}"


@dataclass(frozen=True)
class _Slo:
    alert: str
    family: str
    what: str
    slo: float
    for_seconds: int
    summary: str


def _slos(p: Policy) -> tuple[_Slo, ...]:
    return (
        _Slo(TTFT_OVER_SLO, "kvscale_vllm_ttft_seconds", "time to first token", p.ttft_p95_slo_seconds,
             p.ttft_alert_for_seconds,
             "vLLM time to first token p95 is over its SLO; users are waiting for responses."),
        _Slo(ITL_OVER_SLO, "kvscale_vllm_inter_token_latency_seconds", "inter-token latency", p.itl_p95_slo_seconds,
             p.itl_alert_for_seconds, "vLLM inter-token latency p95 is over its SLO; output streams stutter."),
        _Slo(E2E_OVER_SLO, "kvscale_vllm_e2e_latency_seconds", "end-to-end latency", p.e2e_p95_slo_seconds,
             p.e2e_alert_for_seconds, "vLLM end-to-end request latency p95 is over its SLO."),
    )


def traffic_floor(p: Policy) -> str:
    """Pods below the traffic floor, to be removed with ``unless``; empty when vLLM is not scraped."""
    cl = p.cluster_label
    return (f"unless on ({cl}, namespace, pod)\n"
            f"(sum by ({cl}, namespace, pod) ({request_rate(p)}) < {number(p.slo_min_requests_per_second)})")


def _latency(p: Policy, slo: _Slo) -> Alert:
    p95 = kvscale(slo.family, p.exporter_selector, f'quantile="{number(SLO_QUANTILE)}"')
    return Alert(
        slo.alert, f"{p95} > {number(slo.slo)}\n{traffic_floor(p)}", slo.for_seconds,
        p.latency_slo_severity, slo.summary,
        f"p95 {slo.what} of {_POD} is {{{{ $value | humanizeDuration }}}}, over the {number(slo.slo)}s SLO for "
        f"{duration(slo.for_seconds)}.",
        p95)


def _outcome_share(p: Policy, reason: str) -> tuple[str, str]:
    """(share of the model's finished requests ending with ``reason``, the model's total rate)."""
    rates = request_rate(p, "namespace_model_reason")
    by = model_labels(p)
    total = f"sum by ({by}) ({rates})"
    return f'sum by ({by}) ({rates}{{finished_reason="{reason}"}})\n/\n{total}', total


def _outcomes(p: Policy) -> list[Alert]:
    floor = number(p.slo_min_requests_per_second)
    on_model = f"and on ({model_labels(p)})"
    errors, total = _outcome_share(p, "error")
    aborts, _ = _outcome_share(p, "abort")
    return [
        Alert(REQUEST_ERRORS, f"({errors}) > {number(p.request_error_ratio_alert)}\n{on_model}\n{total} >= {floor}",
              p.request_errors_for_seconds, p.request_errors_severity,
              "vLLM is finishing requests with errors; clients are getting failures.",
              f"{{{{ $value | humanizePercentage }}}} of the requests {_MODEL} finished ended in error "
              f"(line {p.request_error_ratio_alert:.0%}) for {duration(p.request_errors_for_seconds)}.",
              errors),
        Alert(REQUEST_ABORTS, f"({aborts}) > {number(p.request_abort_ratio_alert)}\n{on_model}\n{total} >= {floor}",
              p.request_aborts_for_seconds, p.request_aborts_severity,
              "Many vLLM requests are aborted; clients are giving up or disconnecting.",
              f"{{{{ $value | humanizePercentage }}}} of the requests {_MODEL} finished were aborted "
              f"(line {p.request_abort_ratio_alert:.0%}) for {duration(p.request_aborts_for_seconds)}: clients "
              "time out or disconnect before the answer is done.",
              aborts),
    ]


def slo_alerts(p: Policy) -> list[Alert]:
    return [_latency(p, slo) for slo in _slos(p)] + _outcomes(p)
