"""Per-target bounds on what one vLLM exposition may make the exporter keep and emit.

Pure. A target that names thousands of models, or a model name of megabytes, would
otherwise multiply the exported series and the window's memory by what a single pod
chooses to send (2,000 ``model_name`` values gave 6,007 series; a 15 MB name was copied
into every ``/metrics``). Past a bound the target's reading is refused as a whole, counted
under the ``limit`` reason: a partial reading would be a quietly wrong one.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.vllm.reading import PodReading


class LimitError(ValueError):
    """The reading exceeds one of the target's bounds; the message names which."""


@dataclass(frozen=True)
class TargetLimits:
    """Bounds per target; the defaults sit far above what a vLLM pod sends."""

    max_models: int = 10
    """``model_name`` values: one pod serves one model (LoRA adapters are not model names)."""
    max_engines: int = 256
    """(model, engine) pairs: the data-parallel engines one frontend reports."""
    max_series: int = 50_000
    """Counter series and histogram buckets kept in the window (about 150 per engine)."""
    max_label_value_bytes: int = 512
    """Longest label value kept (``model_name``, ``engine``, a counter's split labels), in UTF-8 bytes."""


def check(reading: PodReading, limits: TargetLimits) -> None:
    """Raise :class:`LimitError` if ``reading`` exceeds ``limits``."""
    models = reading.models()
    if len(models) > limits.max_models:
        raise LimitError(f"{len(models)} model_name values (limit {limits.max_models})")
    if len(reading.engines) > limits.max_engines or len(reading.cache) > limits.max_engines:
        raise LimitError(f"{max(len(reading.engines), len(reading.cache))} engines (limit {limits.max_engines})")
    series = 0
    for (model, engine), state in reading.engines.items():
        _label(model, "model_name", limits)
        _label(engine, "engine", limits)
        for splits in state.counters.values():
            series += len(splits)
            for split in splits:
                for name, value in split:
                    _label(value, name, limits)
        series += sum(len(h.buckets) for h in state.histograms.values())
    for engine in reading.cache:
        _label(engine, "engine", limits)
    if series > limits.max_series:
        raise LimitError(f"{series} counter series and buckets (limit {limits.max_series})")


def _label(value: str, name: str, limits: TargetLimits) -> None:
    # Characters are at most 4 UTF-8 bytes: only a long value needs encoding to be measured.
    if len(value) * 4 > limits.max_label_value_bytes and len(value.encode()) > limits.max_label_value_bytes:
        raise LimitError(f"a {name[:40]} value of {len(value.encode())} bytes (limit {limits.max_label_value_bytes})")
