"""Reading the stat-logger plugin's series beside vLLM's, and preferring them over the histograms (pure)."""

from __future__ import annotations

import pytest

from exporter.contract.exposition import parse
from exporter.vllm.reading import ReadingError, read
from exporter.vllm.series import _quantiles
from exporter.vllm.window import History

VLLM = """# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.5",model_name="m"} %d
vllm:time_to_first_token_seconds_bucket{engine="0",le="1.0",model_name="m"} %d
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} %d
"""
PLUGIN = """# TYPE kvscale_engine_window_observations gauge
kvscale_engine_window_observations{latency="ttft",model_name="m"} %s
kvscale_engine_window_observations{latency="itl",model_name="other"} 4.0
# TYPE kvscale_engine_ttft_seconds gauge
"""


def body(counts: tuple[int, int, int], observations: str | None, quantiles: dict[str, float]) -> str:
    text = VLLM % counts
    if observations is not None:
        text += PLUGIN % observations
        text += "".join(f'kvscale_engine_ttft_seconds{{model_name="m",quantile="{q}"}} {v}\n'
                        for q, v in quantiles.items())
    return text


def test_the_plugins_quantiles_are_read_for_the_models_vllm_serves() -> None:
    reading = read(parse(body((1, 2, 2), "5.0", {"0.5": 0.61, "0.95": 0.93})))
    assert reading.plugin["m"].latencies == {"ttft": {0.5: 0.61, 0.95: 0.93}}
    assert "other" not in reading.plugin  # no vLLM series of that model: not a model of this pod


@pytest.mark.parametrize(("text", "message"), [
    (body((1, 2, 2), "5.0", {"0.5": -1.0}), "invalid value"),
    (body((1, 2, 2), "5.0", {"half": 0.3}), "bad quantile"),
    (body((1, 2, 2), "NaN", {}), "invalid value"),
])
def test_bad_plugin_values_are_a_reading_error(text: str, message: str) -> None:
    with pytest.raises(ReadingError, match=message):
        read(parse(text))


def span_of(*texts: str) -> History:
    history = History(60.0)
    for i, text in enumerate(texts):
        history.add(10.0 * i, read(parse(text)))
    return history


@pytest.mark.parametrize(("observations", "served", "want"), [
    # No plugin: the histogram, interpolated (4 new values, 2 in (0.5, 1.0]: p50 at 0.5, p95 0.5 + 0.5 x 1.8/2).
    (None, {}, {0.5: 0.5, 0.95: 0.95}),
    # The plugin serves both: its values.
    ("5.0", {"0.5": 0.61, "0.95": 0.93}, {0.5: 0.61, 0.95: 0.93}),
    # It serves p50 only: p95 from the histogram.
    ("5.0", {"0.5": 0.61}, {0.5: 0.61, 0.95: 0.95}),
    # Its window is empty: no quantile at all, not the histogram's older picture.
    ("0.0", {}, {}),
])
def test_exact_values_win_where_the_plugin_serves_them(observations: str | None, served: dict[str, float],
                                                     want: dict[float, float]) -> None:
    history = span_of(body((0, 0, 0), observations, served), body((2, 4, 4), observations, served))
    latest = history.latest()
    assert latest is not None
    plugin = latest.reading.plugin.get("m")
    exact = plugin.latencies.get("ttft") if plugin else None
    assert _quantiles(history.span(), "m", "ttft", (0.5, 0.95), exact) == pytest.approx(want)
