"""A replica's /metrics in vLLM 0.33.0's exact text format (prometheus_client 0.26, format 0.0.4).

Families, HELP text, label names and order, bucket boundaries, ``_created`` gauges and
``cache_config_info`` follow the exposition vLLM's own code renders (../shared/fixtures/vllm).
One series per data-parallel engine (label ``engine``); ``admission_rejections`` is a
frontend counter with no ``engine`` label; ``num_gpu_blocks`` is summed over engines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from prometheus_client.utils import floatToGoString

from simulator.engine.scheduler import Engine
from simulator.engine.stats import FINISH_REASONS

_go: Callable[[float], str] = floatToGoString  # Go's float spelling, as prometheus_client writes it
_MFU = "(for Model Flops Utilization calculations)."
COUNTERS_HEAD = (
    ("estimated_flops_per_gpu", f"Estimated number of floating point operations per GPU {_MFU}"),
    ("estimated_read_bytes_per_gpu", f"Estimated number of bytes read from memory per GPU {_MFU}"),
    ("estimated_write_bytes_per_gpu", f"Estimated number of bytes written to memory per GPU {_MFU}"),
)
WAITING_HELP = ("Number of waiting requests by reason. Reason labels: 'capacity' = waiting for scheduling "
                "capacity; 'deferred' = deferred by transient constraints (LoRA budget, KV transfer, blocked "
                "status). Sum of all reasons equals vllm:num_requests_waiting.")
SLEEP_HELP = ("Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; "
              "weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.")
CACHED_BY_SOURCE_HELP = (
    "Prefix-cache hit tokens by the cache tier that supplied them: device (local HBM), host (offloaded to DRAM), "
    "disk, p2p (transferred from another vLLM instance) or external_unspecified. Counted at admission; sums to "
    "vllm:prefix_cache_hits + vllm:external_prefix_cache_hits.")
HISTOGRAM_HELP = (
    ("request_prompt_tokens", "Number of prefill tokens processed."),
    ("request_generation_tokens", "Number of generation tokens processed."),
    ("iteration_tokens_total", "Histogram of number of tokens per engine_step."),
    ("request_max_num_generation_tokens", "Histogram of maximum number of requested generation tokens."),
    ("request_params_n", "Histogram of the n request parameter."),
    ("request_params_max_tokens", "Histogram of the max_tokens request parameter."),
    ("time_to_first_token_seconds", "Histogram of time to first token in seconds."),
    ("inter_token_latency_seconds", "Histogram of inter-token latency in seconds."),
    ("request_time_per_output_token_seconds", "Histogram of time_per_output_token_seconds per request."),
    ("e2e_request_latency_seconds", "Histogram of e2e request latency in seconds."),
    ("request_queue_time_seconds", "Histogram of time spent in WAITING phase for request."),
    ("request_inference_time_seconds", "Histogram of time spent in RUNNING phase for request."),
    ("request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request."),
    ("request_decode_time_seconds", "Histogram of time spent in DECODE phase for request."),
    ("request_num_preemptions", "Histogram of the number of times a request was preempted."),
    ("request_prefill_kv_computed_tokens",
     "Histogram of new KV tokens computed during prefill (excluding cached tokens)."),
)


class Writer:
    def __init__(self, model_name: str, created: float) -> None:
        self.model = model_name
        self.created = _go(created)
        self.parts: list[str] = []

    def head(self, name: str, kind: str, help_text: str) -> None:
        self.parts.append(f"# HELP vllm:{name} {help_text}\n# TYPE vllm:{name} {kind}\n")

    def labels(self, engine: str | None, extra: tuple[tuple[str, str], ...] = ()) -> str:
        pairs = [("model_name", self.model), *extra]
        if engine is not None:
            pairs.append(("engine", engine))
        return ",".join(f'{k}="{v}"' for k, v in sorted(pairs))

    def sample(self, name: str, labels: str, value: float) -> None:
        self.parts.append(f"vllm:{name}{{{labels}}} {_go(value)}\n")

    def gauge(self, name: str, help_text: str, rows: Sequence[tuple[str, float]]) -> None:
        self.head(name, "gauge", help_text)
        for labels, value in rows:
            self.sample(name, labels, value)

    def counter(self, name: str, help_text: str, rows: Sequence[tuple[str, float]]) -> None:
        """A counter as prometheus_client writes it: ``_total`` samples, then a ``_created`` gauge."""
        self.head(f"{name}_total", "counter", help_text)
        for labels, value in rows:
            self.sample(f"{name}_total", labels, value)
        self.head(f"{name}_created", "gauge", help_text)
        for labels, _ in rows:
            self.parts.append(f"vllm:{name}_created{{{labels}}} {self.created}\n")


def render(engines: Sequence[Engine], *, model_name: str, created: float, dp_label: bool = True,
           admission_rejections: tuple[float, float] = (0.0, 0.0),
           gpu_memory_utilization: float = 0.9, prefix_caching: bool = False) -> str:
    """The /metrics body of one vLLM server whose engines are ``engines`` (one per DP rank)."""
    w = Writer(model_name, created)
    eng = [(str(e.index) if dp_label else None, e) for e in engines]

    def per_engine(value: float | Callable[[Engine], float],
                   extra: tuple[tuple[str, str], ...] = ()) -> list[tuple[str, float]]:
        return [(w.labels(label, extra), float(value(e) if callable(value) else value)) for label, e in eng]

    def c(name: str) -> Callable[[Engine], float]:
        return lambda e: e.stats.counters.get(name, 0.0)

    def finished(reason: str) -> Callable[[Engine], float]:
        return lambda e: e.stats.finished[reason]

    def computed(e: Engine) -> float:
        return e.stats.counters["prompt_tokens"] - e.stats.counters.get("prompt_cached", 0.0)

    for name, help_text in COUNTERS_HEAD:
        w.counter(name, help_text, per_engine(0.0))
    w.gauge("num_requests_running", "Number of requests in model execution batches.",
            per_engine(lambda e: float(len(e.running))))
    w.gauge("num_requests_waiting", "Number of requests waiting to be processed.",
            per_engine(lambda e: float(len(e.waiting))))
    w.gauge("num_requests_waiting_by_reason", WAITING_HELP,
            per_engine(lambda e: float(len(e.waiting)), (("reason", "capacity"),))
            + per_engine(0.0, (("reason", "deferred"),)))
    w.gauge("engine_sleep_state", SLEEP_HELP, [row for state, v in (("awake", 1.0), ("weights_offloaded", 0.0),
                                                                   ("discard_all", 0.0))
                                                for row in per_engine(v, (("sleep_state", state),))])
    w.gauge("kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", per_engine(lambda e: e.pool.usage()))
    w.counter("prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.",
              per_engine(c("prefix_cache_queries")))
    w.counter("prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.",
              per_engine(c("prefix_cache_hits")))
    ext = "External prefix cache {} from KV connector cross-instance cache sharing, in terms of number of {} tokens."
    w.counter("external_prefix_cache_queries", ext.format("queries", "queried"), per_engine(0.0))
    w.counter("external_prefix_cache_hits", ext.format("hits", "cached"), per_engine(0.0))
    w.counter("mm_cache_queries", "Multi-modal cache queries, in terms of number of queried items.", per_engine(0.0))
    w.counter("mm_cache_hits", "Multi-modal cache hits, in terms of number of cached items.", per_engine(0.0))
    w.counter("num_preemptions", "Cumulative number of preemption from the engine.", per_engine(c("num_preemptions")))
    w.counter("prompt_tokens", "Number of prefill tokens processed.", per_engine(c("prompt_tokens")))
    w.counter("prompt_tokens_by_source", "Number of prompt tokens by source.",
              per_engine(computed, (("source", "local_compute"),))
              + per_engine(c("prompt_cached"), (("source", "local_cache_hit"),))
              + per_engine(0.0, (("source", "external_kv_transfer"),)))
    w.counter("prompt_tokens_cached", "Number of cached prompt tokens (local + external).",
              per_engine(c("prompt_cached")))
    w.counter("prompt_tokens_cached_by_source", CACHED_BY_SOURCE_HELP,
              [row for src in ("device", "host", "p2p", "disk", "external_unspecified")
               for row in per_engine(c("prefix_cache_hits") if src == "device" else 0.0, (("source", src),))])
    w.counter("generation_tokens", "Number of generation tokens processed.", per_engine(c("generation_tokens")))
    w.counter("request_success", "Count of successfully processed requests.",
              [row for reason in FINISH_REASONS
               for row in per_engine(finished(reason), (("finished_reason", reason),))])
    w.counter("admission_rejections", "Number of admission attempts rejected by a queue limit, by reason.",
              [(w.labels(None, (("reason", r),)), v)
               for r, v in zip(("max_num_queued_reqs", "max_num_queued_tokens"), admission_rejections, strict=True)])
    for name, help_text in HISTOGRAM_HELP:
        w.head(name, "histogram", help_text)
        for label, e in eng:
            h = e.stats.histograms[name]
            les = [*(_go(b) for b in h.bounds), "+Inf"]
            for le, count in zip(les, h.cumulative(), strict=True):
                w.sample(f"{name}_bucket", w.labels(label, (("le", le),)), count)
            w.sample(f"{name}_count", w.labels(label), h.n)
            w.sample(f"{name}_sum", w.labels(label), h.total)
        w.head(f"{name}_created", "gauge", help_text)
        for label, _ in eng:
            w.parts.append(f"vllm:{name}_created{{{w.labels(label)}}} {w.created}\n")
    _cache_config_info(w, engines, dp_label, gpu_memory_utilization, prefix_caching)
    return "".join(w.parts)


def _cache_config_info(w: Writer, engines: Sequence[Engine], dp_label: bool, utilization: float,
                       prefix_caching: bool) -> None:
    first = engines[0]
    total_blocks = sum(e.pool.num_blocks for e in engines)  # vLLM's frontend sums over DP engines
    size = first.pool.num_blocks * first.pool.block_size
    fields = {
        "_block_size_resolved": "True", "block_size": str(first.pool.block_size), "cache_dtype": "auto",
        "cache_hit_alignment_tokens": "None", "effective_attention_block_size": "None",
        "enable_mamba_shared_prefix_checkpoint": "False", "enable_prefix_caching": str(prefix_caching),
        "gpu_memory_utilization": repr(utilization), "hash_block_size": "None", "is_attention_free": "False",
        "kv_cache_dtype_skip_layers": "[]", "kv_cache_layout": "None",
        "kv_cache_max_concurrency": repr(size / first.profile.max_model_len), "kv_cache_memory_bytes": "None",
        "kv_cache_size_tokens": str(size), "kv_offloading_backend": "native", "kv_offloading_size": "None",
        "kv_sharing_fast_prefill": "False", "mamba_block_size": "None", "mamba_cache_dtype": "auto",
        "mamba_cache_mode": "none", "mamba_page_size_padded": "None", "mamba_ssm_cache_dtype": "float32",
        "num_cpu_blocks": "None", "num_gpu_blocks": str(total_blocks), "num_gpu_blocks_override": "None",
        "prefix_cache_retention_interval": "0", "prefix_caching_hash_algo": "sha256", "prefix_match_unit": "None",
        "replayssm_buffer_len": "16", "simple_cpu_offload_num_blocks": "None", "skip_page_size_padded": "None",
        "sliding_window": "None", "swa_bounded_replay": "True", "use_kda_recoverssm": "False",
        "use_replayssm": "False", "user_specified_block_size": "False",
    }
    w.head("cache_config_info", "gauge", "Information of the LLMEngine CacheConfig")
    for e in engines:
        labels = {**fields, "engine": str(e.index)} if dp_label else dict(fields)
        w.parts.append("vllm:cache_config_info{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
                       + "} 1.0\n")
