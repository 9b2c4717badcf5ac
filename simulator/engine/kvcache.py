"""vLLM's paged KV cache, by block counts: allocation per block, prefix caching with LRU eviction.

Usage is vLLM's: ``1 - free / (num_blocks - 1)`` (one block is the null block), where
free blocks include cached blocks nobody holds (evictable), so a warm prefix cache
does not read as used.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence


class KVCacheError(RuntimeError):
    """The block accounting went wrong: a bug, never a normal condition."""


class BlockPool:
    def __init__(self, num_blocks: int, block_size: int, *, prefix_caching: bool = False) -> None:
        if num_blocks < 2 or block_size < 1:
            raise KVCacheError(f"need >= 2 blocks of >= 1 token, got {num_blocks} x {block_size}")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.prefix_caching = prefix_caching
        self.free = num_blocks - 1  # blocks nobody holds and no cache entry names
        self.held_private = 0
        self._cached_refs: dict[Hashable, int] = {}  # cached blocks in use, by key -> holders
        self._evictable: OrderedDict[Hashable, None] = OrderedDict()  # cached, unheld: LRU first

    @property
    def usable(self) -> int:
        return self.num_blocks - 1

    def available(self) -> int:
        return self.free + len(self._evictable)

    def used(self) -> int:
        return self.usable - self.available()

    def usage(self) -> float:
        return self.used() / self.usable

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def allocate(self, n: int) -> bool:
        """Take n private blocks; False (nothing taken) when they are not there."""
        if n <= 0:
            return True
        if n > self.available():
            return False
        take = min(n, self.free)
        self.free -= take
        for _ in range(n - take):  # evict least recently used cached blocks
            self._evictable.popitem(last=False)
        self.held_private += n
        return True

    def release(self, n: int) -> None:
        if n > self.held_private or n < 0:
            raise KVCacheError(f"releasing {n} blocks, {self.held_private} held")
        self.held_private -= n
        self.free += n

    def lookup(self, keys: Sequence[Hashable]) -> int:
        """How many leading keys are cached (held or evictable)."""
        if not self.prefix_caching:
            return 0
        n = 0
        for key in keys:
            if key not in self._cached_refs and key not in self._evictable:
                break
            n += 1
        return n

    def evictable_among(self, keys: Sequence[Hashable]) -> int:
        """How many of these cached keys nobody holds (acquiring them takes them off the free count)."""
        return sum(1 for key in keys if key in self._evictable)

    def acquire_cached(self, keys: Sequence[Hashable]) -> None:
        """Hold cached blocks found by ``lookup``."""
        for key in keys:
            if key in self._evictable:
                del self._evictable[key]
                self._cached_refs[key] = 1
            else:
                self._cached_refs[key] += 1

    def promote(self, keys: Sequence[Hashable]) -> list[Hashable]:
        """Turn held private blocks into cached blocks under these keys (computed prefix blocks).

        Keys already cached by another request stay private (vLLM keeps the duplicate
        block); returns the keys that were registered, which the caller now holds.
        """
        registered: list[Hashable] = []
        for key in keys:
            if key in self._cached_refs or key in self._evictable:
                continue
            if self.held_private <= 0:
                raise KVCacheError("promoting a block that is not held")
            self.held_private -= 1
            self._cached_refs[key] = 1
            registered.append(key)
        return registered

    def release_cached(self, keys: Sequence[Hashable]) -> None:
        for key in keys:
            refs = self._cached_refs[key] - 1
            if refs:
                self._cached_refs[key] = refs
            else:
                del self._cached_refs[key]
                self._evictable[key] = None  # most recently used last

    def check(self) -> None:
        """Conservation: every usable block is free, private, cached-held or evictable."""
        total = self.free + self.held_private + len(self._cached_refs) + len(self._evictable)
        if total != self.usable or min(self.free, self.held_private) < 0:
            raise KVCacheError(f"block accounting: {total} != {self.usable}")
