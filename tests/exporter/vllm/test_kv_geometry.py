"""Telling a hybrid KV cache from DP engines of unequal size and an unaligned max_model_len.

Numbers are vLLM 0.33.0's, computed as its code does (see kv_geometry's docstring): M = N1 / P,
T = int(M * L), N summed over engines; B = 16, L = 4096 unless said (ceil(4096/16) = 256 blocks).
"""

from __future__ import annotations

import pytest

from exporter.vllm.kv_geometry import KvGeometry, geometry, max_model_len
from exporter.vllm.reading import CacheConfig


def cache(total: int | None, concurrency: float | None, length: int = 4096, *, block: int | None = 16,
          tokens: int | None = None) -> CacheConfig:
    if tokens is None and concurrency is not None:
        tokens = int(concurrency * length)
    return CacheConfig(block_size=block, num_gpu_blocks_total=total, kv_cache_size_tokens=tokens,
                       kv_cache_max_concurrency=concurrency)


@pytest.mark.parametrize(("config", "engines", "want"), [
    # Full attention, one engine: T = N*B.
    (cache(12345, 12345 / 256), 1, KvGeometry(16, 12345, True, 197520)),
    # max_model_len 4001: ceil(4001/16) = 251 blocks per request, so T = 196782 < N*B = 197520.
    (cache(12345, 12345 / 251, 4001), 1, KvGeometry(16, 12345, True, 196782)),
    # DP=2, 12345 + 11800 blocks, the 12345 engine ready first: T is its own, N the sum.
    (cache(24145, 12345 / 256), 2, KvGeometry(16, 24145 / 2, True, 197520 * 24145 / 12345)),
    # ... the 11800 engine ready first.
    (cache(24145, 11800 / 256), 2, KvGeometry(16, 24145 / 2, True, 188800 * 24145 / 11800)),
    # Full attention + a 512-token window: P = 256 + 161 = 417 blocks per request.
    (cache(24690, 24690 / 417), 1, KvGeometry(16, 24690, False, 242518)),
    (cache(48290, 23600 / 417), 2, KvGeometry(16, 48290 / 2, False, 2 * 231811)),
    # One engine: a hybrid whose M happens to be whole is still caught (N1 = 60*256 != N).
    (cache(25020, 60.0), 1, KvGeometry(16, 25020, False, 245760)),
    # DP: the documented residue, a hybrid with N1 a multiple of P (25020 = 60*417) passes.
    (cache(49020, 60.0), 2, KvGeometry(16, 24510, True, 245760 * 49020 / 15360)),
    # DP: the first engine cannot leave the other less than one request of L (12500 - 12345 < 256).
    (cache(12500, 12345 / 256), 2, KvGeometry(16, 6250, False, 2 * 197520)),
    # vLLM < 0.28: no T, no M; blocks taken to track tokens, capacity N*B.
    (cache(81767, None), 1, KvGeometry(16, 81767, True, 81767 * 16)),
    # Cannot tell: T without M, or M < 1 (L not unique), or no block size.
    (cache(12345, None, tokens=197520), 1, KvGeometry(16, 12345, None, 197520)),
    (cache(12345, 0.5, tokens=2048), 1, KvGeometry(16, 12345, None, 2048)),
    (cache(12345, 12345 / 256, block=None), 1, KvGeometry(None, 12345, None, 197520)),
    (cache(None, 12345 / 256), 1, KvGeometry(16, None, None, 197520)),
])
def test_geometry(config: CacheConfig, engines: int, want: KvGeometry) -> None:
    got = geometry(config, engines)
    assert (got.block_size, got.tracks_tokens) == (want.block_size, want.tracks_tokens)
    assert got.engine_blocks == (None if want.engine_blocks is None else pytest.approx(want.engine_blocks))
    assert got.capacity_tokens == (None if want.capacity_tokens is None else pytest.approx(want.capacity_tokens))


@pytest.mark.parametrize(("tokens", "concurrency", "want"), [
    (197520, 48.22265625, 4096),
    (196782, 12345 / 251, 4001),
    (242518, 24690 / 417, 4096),
    (int(1_000_003 / 9 * 131072), 1_000_003 / 9, 131072),
    (2048, 0.5, None),
])
def test_max_model_len_is_recovered_as_vllm_computed_the_capacity(tokens: int, concurrency: float,
                                                                  want: int | None) -> None:
    assert max_model_len(tokens, concurrency) == want
