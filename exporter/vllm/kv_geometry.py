"""KV-cache geometry from ``cache_config_info``: blocks per engine, capacity, and whether blocks track tokens.

The fragmentation estimate (DESIGN.md) needs each engine's GPU blocks N_e and block size B,
and holds only where a request's KV is one run of B-token blocks: a KV cache of a single
full-attention group. What vLLM 0.33 reports, and where it comes from:

- ``num_gpu_blocks`` N is the sum over the data-parallel engines: the frontend adds each
  engine's ready response (``MPClient._apply_ready_response``, vllm/v1/engine/core_client.py);
- ``kv_cache_max_concurrency`` M = N1 / P and ``kv_cache_size_tokens`` T = int(M * L) are the
  first ready engine's only (same function: "do not sum across DP"), with N1 its blocks, L its
  max_model_len and P the blocks one request of L tokens takes, summed over the KV cache
  groups (``get_max_concurrency_for_kv_cache_config``, vllm/v1/core/kv_cache_utils.py);
- every engine's info row repeats these frontend values, so D, the number of rows, is the DP size.

So T != (N/D)*B is no sign of a hybrid model: under DP with unequal engines N/D != N1, and
where B does not divide L, T = int(N*L / ceil(L/B)) < N*B. What does differ is P: one
full-attention group takes ceil(L/B) blocks per request; every further group (sliding
window, Mamba, ...) adds its own.

The rule: recover L as the integer with int(M*L) = T (unique for M >= 1, and vLLM refuses to
start an engine that cannot hold one request of L). Blocks track tokens iff
N1 = M * ceil(L/B) is a whole number of blocks that fits: N1 = N for one engine; for D > 1,
N1 >= ceil(L/B) and N - N1 >= (D-1) * ceil(L/B) (every engine holds one request of L).

Invariants:
- one engine: the verdict is exact (one full-attention group iff N = M * ceil(L/B));
- D > 1: a full-attention model is never taken for a hybrid one; a hybrid one passes only when
  N1 * ceil(L/B) / P happens to be whole (N1 a multiple of P / gcd(P, ceil(L/B)));
- whole to 1e-6 of a block: M is printed as Python's float repr, so (N1/P)*P misses by about
  N1 * 2e-16, while a hybrid's fraction is at least 1/P;
- labels present but inconsistent (M < 1, no L with int(M*L) = T): unknown, no estimate;
- vLLM before 0.28 exports neither T nor M: blocks are taken to track tokens, as before;
- N_e, not exported per engine under DP, is N/D; the pod's capacity is T scaled by N/N1 when
  N1 is known, else D*T (T is one engine's), else N*B.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from exporter.vllm.reading import CacheConfig

_WHOLE = 1e-6


@dataclass(frozen=True, slots=True)
class KvGeometry:
    """One pod's KV geometry as its D engines share it."""

    block_size: int | None
    engine_blocks: float | None
    """N/D: each engine's GPU blocks (their mean under DP)."""
    tracks_tokens: bool | None
    """True: one full-attention group; False: a hybrid KV cache; None: cannot tell."""
    capacity_tokens: float | None
    """The pod's KV capacity in tokens over its D engines."""


def max_model_len(tokens: int, concurrency: float) -> int | None:
    """L from T = int(M*L), as vLLM computes T (``get_kv_cache_capacity``); None when not unique."""
    if concurrency < 1:
        return None
    guess = math.floor(tokens / concurrency)
    found = [n for n in (guess - 1, guess, guess + 1, guess + 2) if n > 0 and int(concurrency * n) == tokens]
    return found[0] if len(found) == 1 else None


def single_group(cache: CacheConfig, engines: int) -> tuple[bool | None, int | None]:
    """(blocks track tokens?, N1 when they do) by the rule above; (None, None) when unknowable."""
    total, block = cache.num_gpu_blocks_total, cache.block_size
    tokens, concurrency = cache.kv_cache_size_tokens, cache.kv_cache_max_concurrency
    if tokens is None or concurrency is None or block is None or not total:
        return None, None
    length = max_model_len(tokens, concurrency)
    if length is None:
        return None, None
    per_request = math.ceil(length / block)
    blocks = concurrency * per_request
    if abs(blocks - round(blocks)) > _WHOLE:
        return False, None
    first = round(blocks)
    # One engine: N1 is N. Several: N1 and each other engine hold at least one request of L.
    others = total - first
    fits = others == 0 if engines == 1 else first >= per_request and others >= (engines - 1) * per_request
    return fits, first if fits else None


def geometry(cache: CacheConfig, engines: int) -> KvGeometry:
    """The geometry of a pod whose ``cache_config_info`` rows (one per engine, D = ``engines``) say ``cache``."""
    engines = max(1, engines)
    total, block, tokens = cache.num_gpu_blocks_total, cache.block_size, cache.kv_cache_size_tokens
    engine_blocks = total / engines if total else None
    if tokens is None and cache.kv_cache_max_concurrency is None:
        return KvGeometry(block, engine_blocks, True, float(total * block) if total and block else None)
    tracks, first = single_group(cache, engines)
    if tokens is None:
        capacity = None
    elif engines == 1:
        capacity = float(tokens)
    elif first and total:
        capacity = tokens * total / first
    else:
        capacity = float(tokens * engines)
    return KvGeometry(block, engine_blocks, tracks, capacity)
