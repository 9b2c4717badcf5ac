"""What kvscale's stat-logger plugin costs vLLM's output loop, with vLLM's own stats objects.

    bash .ci/vllm-env.sh 0.33.0 && .tools/vllm-0.33.0/bin/pip install -q --no-deps -e .
    .tools/vllm-0.33.0/bin/python bench/bench_vllm_plugin.py

Runs in the vLLM venv (the conformance tier's; kvscale installed without dependencies). The plugin's
``record`` is called as ``StatLoggerManager.record`` calls it, with ``SchedulerStats`` and
``IterationStats`` / ``FinishedRequestStats`` built by vLLM's classes:

- per finished request: a step that finishes ``--batch`` requests (their TTFT, e2e latency and queue
  time: what a request adds besides its inter-token gaps), divided by the batch;
- per inter-token observation: a decode step of ``--batch`` running requests (one ITL each);
- the fixed cost of a step (scheduler stats only: the KV peak);
- memory: traced allocations once the windows are full, and again after ten times as many records;
- the scrape: computing the quantiles of full windows (vLLM's /metrics handler runs it).

Prints the median of ``--repeat`` timed runs of ``--steps`` calls each.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vllm.v1.engine import FinishReason  # noqa: E402
from vllm.v1.metrics.stats import FinishedRequestStats, IterationStats, SchedulerStats  # noqa: E402

from exporter.vllm_plugin.logger import KvscaleStatLogger  # noqa: E402


def finishing_step(batch: int, i: int) -> IterationStats:
    stats = IterationStats()
    stats.time_to_first_tokens_iter = [0.1 + (i + k) % 97 / 100 for k in range(batch)]
    stats.finished_requests = [FinishedRequestStats(FinishReason.STOP, e2e_latency=2.0 + k / batch,
                                                    queued_time=0.01 * k) for k in range(batch)]
    return stats


def decode_step(batch: int, i: int) -> IterationStats:
    stats = IterationStats()
    stats.inter_token_latencies_iter = [0.02 + (i + k) % 13 / 1000 for k in range(batch)]
    stats.num_generation_tokens = batch
    return stats


def timed(logger: KvscaleStatLogger, calls: list[tuple[Any, Any]], repeat: int) -> float:
    """Median seconds per call over ``repeat`` runs of every call."""
    runs = []
    for _ in range(repeat):
        gc.disable()
        start = time.perf_counter()
        for sched, it in calls:
            logger.record(sched, it, engine_idx=0)
        runs.append((time.perf_counter() - start) / len(calls))
        gc.enable()
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64, help="requests per step")
    parser.add_argument("--steps", type=int, default=2000, help="calls per timed run")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    config = SimpleNamespace(model_config=SimpleNamespace(served_model_name=["bench"], model="bench"))
    logger = KvscaleStatLogger(config, [0])
    sched = SchedulerStats(num_running_reqs=args.batch, kv_cache_usage=0.5)
    finishing = [(None, finishing_step(args.batch, i)) for i in range(args.steps)]
    decoding = [(None, decode_step(args.batch, i)) for i in range(args.steps)]
    scheduling = [(sched, None)] * args.steps
    per_request = timed(logger, finishing, args.repeat) / args.batch
    per_itl = timed(logger, decoding, args.repeat) / args.batch
    per_step = timed(logger, scheduling, args.repeat)
    print(f"vLLM stats objects, batch {args.batch}, median of {args.repeat} x {args.steps} calls")
    print(f"  per finished request (TTFT, e2e, queue): {per_request * 1e6:.3f} us")
    print(f"  per inter-token observation:            {per_itl * 1e6:.3f} us")
    print(f"  per step, scheduler stats (KV peak):     {per_step * 1e6:.3f} us")
    w = logger.windows
    fill = w.capacity // args.batch + 1
    tracemalloc.start()
    for i in range(fill):
        logger.record(sched, finishing_step(args.batch, i), engine_idx=0)
        logger.record(None, decode_step(args.batch, i), engine_idx=0)
    full = tracemalloc.get_traced_memory()[0]
    for i in range(10 * fill):
        logger.record(sched, finishing_step(args.batch, i), engine_idx=0)
        logger.record(None, decode_step(args.batch, i), engine_idx=0)
    later = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    kept = {short: len(window._values) for short, window in w.latencies.items()}
    print(f"  memory with the windows full ({w.capacity} values per latency): {full / 2**20:.2f} MiB traced;"
          f" after 10x as many records: {later / 2**20:.2f} MiB; values kept {kept}")
    scrapes = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        list(logger.collector.collect())
        scrapes.append(time.perf_counter() - start)
    print(f"  a scrape of vLLM's /metrics with the windows full (sorting, quantiles): "
          f"{statistics.median(scrapes) * 1e3:.2f} ms; faults counted: {w.faults}")


if __name__ == "__main__":
    main()
