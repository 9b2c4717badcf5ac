"""Normalize one vLLM /metrics exposition across versions into per-engine readings.

Pure. Handles the renames a version-tolerant scraper must (the new name wins when a
version emits both), both ``vllm:`` and ``vllm_`` spellings, an optional ``engine``
label (V0 had none), and ``cache_config_info`` read by label *name*: its label set
changes with every CacheConfig change, so it is never used as an identity.

A counter that vLLM splits by another label (admission rejections by ``reason``) is kept
as one value per series, never summed here: the counter-reset rule holds per series, and
a restart where one reason's count falls while the sum rises would be invisible in a sum.
The four histograms read carry no label besides ``model_name``, ``engine`` and ``le``.

Where kvscale's stat-logger plugin runs inside vLLM (``exporter.vllm_plugin``), the same body
carries its exact windowed quantiles (``kvscale_engine_*``, names in the vLLM name table); they
are read per model, for models that also have vLLM series, and the derivations prefer them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from exporter.contract.exposition import Exposition, Labels, SampleList, selection
from exporter.contract.vllm_names import (
    COUNTERS,
    ENGINE_OBSERVATIONS,
    ENGINE_QUANTILES,
    GAUGES,
    HISTOGRAMS,
    PREFIXES,
)


def _sample_names() -> list[str]:
    names = [n for group in (GAUGES, COUNTERS) for ns in group.values() for n in ns]
    names += [n + "_bucket" for ns in HISTOGRAMS.values() for n in ns]
    names.append("cache_config_info")
    return [prefix + n for prefix in PREFIXES for n in names] + [ENGINE_OBSERVATIONS, *ENGINE_QUANTILES.values()]


SELECTION = selection(_sample_names())
"""Line prefixes of every sample this module reads (for ``parse(only=...)``)."""

_GAUGE_TYPES = frozenset({"gauge", "untyped", "unknown"})
_COUNTER_TYPES = frozenset({"counter", "untyped", "unknown"})


class ReadingError(ValueError):
    """The exposition parsed but is not a usable vLLM exposition (wrong type, bad value...)."""


EngineKey = tuple[str, str]
"""(model_name, engine); engine is "" for V0 expositions."""

Split = tuple[tuple[str, str], ...]
"""The labels, sorted, that tell a counter's series apart within one engine (``reason``); () for none."""

_IDENTITY = frozenset({"model_name", "engine"})


@dataclass(frozen=True)
class Histogram:
    """Cumulative buckets as (upper bound, count) sorted by bound, +Inf last."""

    buckets: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class CacheConfig:
    block_size: int | None
    num_gpu_blocks_total: int | None
    """Summed over data-parallel engines by vLLM's frontend."""
    kv_cache_size_tokens: int | None
    """The first ready engine's capacity in tokens, group-aware (0.28+)."""
    kv_cache_max_concurrency: float | None
    """The first ready engine's requests of max_model_len that fit (0.28+)."""


@dataclass
class EngineReading:
    gauges: dict[str, float] = field(default_factory=dict)
    counters: dict[str, dict[Split, float]] = field(default_factory=dict)
    """Short name -> one value per series (by its split labels)."""
    histograms: dict[str, Histogram] = field(default_factory=dict)


MAX_PLUGIN_QUANTILES = 16
"""Quantiles kept per latency from the plugin's series (it serves four): a target cannot grow the reading."""


@dataclass
class PluginReading:
    """What kvscale's stat-logger plugin serves for one model: latency short name -> {quantile: value}.

    A latency is present once the plugin reports its window (even empty: then no quantile)."""

    latencies: dict[str, dict[float, float]] = field(default_factory=dict)


@dataclass
class PodReading:
    """Everything kvscale uses from one target's exposition."""

    engines: dict[EngineKey, EngineReading] = field(default_factory=dict)
    cache: dict[str, CacheConfig] = field(default_factory=dict)
    """By engine label ("" when absent)."""
    plugin: dict[str, PluginReading] = field(default_factory=dict)
    """By model: kvscale's stat-logger plugin's series, when vLLM runs it."""

    def models(self) -> list[str]:
        return sorted({model for model, _ in self.engines})


def read(exposition: Exposition) -> PodReading:
    """Project a parsed exposition onto the fields kvscale derives from."""
    reading = PodReading()
    for short, names in GAUGES.items():
        found = _lookup(exposition, names, "", _GAUGE_TYPES)
        for labels, value in found:
            _finite(value, short)
            _engine(reading, labels).gauges[short] = value
    for short, names in COUNTERS.items():
        found = _lookup(exposition, names, "", _COUNTER_TYPES)
        for labels, value in found:
            if not math.isfinite(value) or value < 0:
                raise ReadingError(f"counter {short} has invalid value {value}")
            split = tuple(sorted((k, v) for k, v in labels.items() if k not in _IDENTITY))
            _engine(reading, labels).counters.setdefault(short, {})[split] = value
    for short, names in HISTOGRAMS.items():
        _read_histogram(reading, exposition, short, names)
    _read_cache_config(reading, exposition)
    _read_plugin(reading, exposition)
    return reading


def _lookup(exp: Exposition, names: tuple[str, ...], suffix: str, allowed: frozenset[str]) -> SampleList:
    """Samples of the first (newest) family name present, either spelling; type-checked."""
    for name in names:
        for prefix in PREFIXES:
            family = prefix + name
            samples = exp.samples.get(family + suffix)
            if samples is None:
                continue
            declared = exp.types.get(family) or exp.types.get(family.removesuffix("_total"))
            if declared is not None and declared not in allowed:
                raise ReadingError(f"{family} declared as {declared}, expected {'/'.join(sorted(allowed))}")
            return samples
    return []


def _engine(reading: PodReading, labels: Labels) -> EngineReading:
    key = (labels.get("model_name", ""), labels.get("engine", ""))
    engine = reading.engines.get(key)
    if engine is None:
        engine = reading.engines[key] = EngineReading()
    return engine


def _finite(value: float, what: str) -> None:
    if not math.isfinite(value) or value < 0:
        raise ReadingError(f"{what} has invalid value {value}")


def _read_histogram(reading: PodReading, exp: Exposition, short: str, names: tuple[str, ...]) -> None:
    samples = _lookup(exp, names, "_bucket", frozenset({"histogram", "untyped", "unknown"}))
    per_engine: dict[EngineKey, list[tuple[float, float]]] = {}
    for labels, value in samples:
        le = labels.get("le")
        if le is None:
            raise ReadingError(f"{short}: bucket without le label")
        try:
            bound = float(le)
        except ValueError:
            raise ReadingError(f"{short}: bad le {le!r}") from None
        if math.isnan(bound) or math.isnan(value) or value < 0 or math.isinf(value):
            raise ReadingError(f"{short}: invalid bucket le={le} value={value}")
        key = (labels.get("model_name", ""), labels.get("engine", ""))
        per_engine.setdefault(key, []).append((bound, value))
    for key, buckets in per_engine.items():
        buckets.sort()
        if buckets[-1][0] != math.inf:
            raise ReadingError(f"{short}: histogram without a +Inf bucket")
        model, engine = key
        _engine(reading, {"model_name": model, "engine": engine}).histograms[short] = Histogram(tuple(buckets))


def _int_label(labels: Labels, name: str) -> int | None:
    raw = labels.get(name)
    if raw is None or raw in ("None", ""):
        return None
    try:
        number = float(raw)
    except ValueError:
        return None  # an unexpected spelling drops this field only, not the reading
    if not math.isfinite(number) or number <= 0:
        return None
    return int(number)


def _float_label(labels: Labels, name: str) -> float | None:
    raw = labels.get(name)
    try:
        number = float(raw) if raw is not None else math.nan
    except ValueError:
        return None
    return number if math.isfinite(number) and number > 0 else None


def _read_cache_config(reading: PodReading, exp: Exposition) -> None:
    for prefix in PREFIXES:
        for labels, _ in exp.samples.get(prefix + "cache_config_info", []):
            reading.cache[labels.get("engine", "")] = CacheConfig(
                block_size=_int_label(labels, "block_size"),
                num_gpu_blocks_total=_int_label(labels, "num_gpu_blocks"),
                kv_cache_size_tokens=_int_label(labels, "kv_cache_size_tokens"),
                kv_cache_max_concurrency=_float_label(labels, "kv_cache_max_concurrency"),
            )


def _read_plugin(reading: PodReading, exp: Exposition) -> None:
    models = {model for model, _ in reading.engines}
    for labels, count in exp.samples.get(ENGINE_OBSERVATIONS, []):
        model, short = labels.get("model_name", ""), labels.get("latency", "")
        if model in models and short in ENGINE_QUANTILES:
            _finite(count, ENGINE_OBSERVATIONS)
            reading.plugin.setdefault(model, PluginReading()).latencies[short] = {}
    for short, name in ENGINE_QUANTILES.items():
        for labels, value in exp.samples.get(name, []):
            plugin = reading.plugin.get(labels.get("model_name", ""))
            if plugin is None or short not in plugin.latencies:
                continue
            try:
                q = float(labels.get("quantile", ""))
            except ValueError:
                raise ReadingError(f"{name}: bad quantile {labels.get('quantile')!r}") from None
            _finite(value, name)
            if 0 <= q <= 1 and len(plugin.latencies[short]) < MAX_PLUGIN_QUANTILES:
                plugin.latencies[short][q] = value
