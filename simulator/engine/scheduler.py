"""One vLLM engine core: the V1 scheduler's step, and jumps over steps that change nothing.

Each step follows ``vllm/v1/core/sched/scheduler.py``: running requests first (decode
tokens, then unfinished prefill chunks) within the token budget, preempting the last
running request by recompute when KV blocks run out; then, if nothing was preempted,
waiting requests in arrival order while there is budget, a sequence slot and blocks
(chunked prefill). A step's time comes from the profile.

Speed: while every running request is decoding and no waiting request can be admitted,
steps differ only in the KV read, which grows by one token per request per step. The
engine then jumps k steps at once (to the next finish, the next arrival, or the step
where blocks run out) and records their k gaps per request in closed form.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

from simulator.engine.kvcache import BlockPool, KVCacheError
from simulator.engine.profile import Profile
from simulator.engine.request import Request
from simulator.engine.stats import EngineStats


class Engine:
    def __init__(self, profile: Profile, *, index: int = 0, start: float = 0.0, prefix_caching: bool = False,
                 num_gpu_blocks: int | None = None) -> None:
        self.profile = profile
        self.index = index
        self.step_time = profile.step
        self.max_num_seqs = profile.max_num_seqs
        self.max_batched = profile.max_num_batched_tokens
        self.pool = BlockPool(num_gpu_blocks or profile.num_gpu_blocks, profile.block_size,
                              prefix_caching=prefix_caching)
        self.stats = EngineStats(profile.max_model_len)
        self.now = start
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.admitted = 0
        self.done = 0
        self.on_finish: Callable[[Request], None] | None = None

    # -- outside view -------------------------------------------------------------------------
    @property
    def outstanding(self) -> int:
        return len(self.running) + len(self.waiting)

    def add(self, req: Request) -> None:
        """Queue a request that arrived at ``req.arrival``; the engine joins it at its next step."""
        if not self.outstanding:
            self.now = max(self.now, req.arrival)
        req.engine_index = self.index
        self.waiting.append(req)
        self.admitted += 1

    def abort(self, req: Request) -> None:
        """Drop a request (client went away): its blocks are freed, it counts as aborted."""
        if req in self.waiting:
            self.waiting.remove(req)
        elif req in self.running:
            self.running.remove(req)
        else:
            return
        self._finish(req, max(self.now, req.arrival), "abort")

    def advance(self, until: float) -> None:
        """Run every step that starts before ``until``; an idle engine's clock moves to ``until``."""
        while self.now < until and (self.running or self.waiting):
            k = self._jump_length(until) if self._steady() else 0
            if k > 0:
                self._jump(k)
            else:
                self._step()
        if not self.outstanding:
            self.now = max(self.now, until)

    def next_change(self) -> float:
        """When the batch changes next if nothing arrives (a finish or a preemption)."""
        if not self.running and not self.waiting:
            return math.inf
        if not self._steady():
            return self.now
        k = self._kv_steps(min(r.remaining for r in self.running))
        a, c = self._jump_times()
        return self.now + k * a + c * k * (k - 1) / 2

    def conserved(self) -> bool:
        """Every admitted request is queued, running or done (finished, aborted)."""
        self.pool.check()
        return self.admitted == self.done + len(self.running) + len(self.waiting)

    # -- steady decode: closed-form jumps --------------------------------------------------------
    def _steady(self) -> bool:
        # Decoding: one token to compute, and past the first token (whose step records TTFT).
        if not self.running or any(r.num_tokens - r.num_computed != 1 or r.first_token is None
                                   for r in self.running):
            return False
        if not self.waiting or len(self.running) >= self.max_num_seqs:
            return True
        head = self.waiting[0]
        hits = self._hits(head)
        first = min(head.num_tokens - hits, self.max_batched - len(self.running))
        need = self.pool.blocks_for(hits + first) - hits // self.pool.block_size
        return need > self.pool.available()  # stays true: decoding only takes blocks

    def _jump_times(self) -> tuple[float, float]:
        """First step's time and the per-step growth (one more KV token read per request)."""
        n = len(self.running)
        kv = sum(r.num_computed for r in self.running) + n
        return self.step_time.seconds(n, kv, n), self.step_time.per_kv_token_s * n

    def _kv_steps(self, limit: float) -> int:
        """Most decode steps (<= limit) whose new blocks fit in the free ones."""
        available, block = self.pool.available(), self.pool.block_size

        def need(k: int) -> int:
            return sum(-(-(r.num_computed + k) // block) - r.held_blocks() for r in self.running)

        hi = int(min(limit, max(r.remaining for r in self.running)))
        if need(hi) <= available:
            return hi
        lo = 0  # need(lo) fits, need(hi) does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if need(mid) <= available else (lo, mid)
        return lo

    def _jump_length(self, until: float) -> int:
        a, c = self._jump_times()
        gap = until - self.now
        # Steps i = 0.. start at now + i*a + c*i*(i-1)/2; count those starting before `until`.
        if c > 0:
            b = a - c / 2
            k_time = math.ceil((-b + math.sqrt(b * b + 2 * c * gap)) / c)
        else:
            k_time = math.ceil(gap / a)
        k_time = max(1, k_time)
        k_finish = min(r.remaining for r in self.running)
        return self._kv_steps(min(k_time, k_finish))

    def _jump(self, k: int) -> None:
        a, c = self._jump_times()
        n = len(self.running)
        elapsed = k * a + c * k * (k - 1) / 2
        end = self.now + elapsed
        block = self.pool.block_size
        for r in self.running:
            r.num_computed += k
            r.generated += k
            new = -(-r.num_computed // block) - r.held_blocks()
            if new > 0:
                self._take(r, new)
            r.last_token = end
        s = self.stats
        s.histograms["inter_token_latency_seconds"].observe_linear(a, c, k, weight=n)
        s.histograms["iteration_tokens_total"].observe(n, weight=k)
        s.counters["generation_tokens"] += n * k
        s.counters["steps"] += k
        s.busy_seconds += elapsed
        self.now = end
        self._after_tokens(self.running, end)

    # -- one scheduler step -------------------------------------------------------------------
    def _hits(self, req: Request) -> int:
        """Prefix-cache hit tokens for a request about to (re)start; at least one token is computed."""
        if req.num_computed or not self.pool.prefix_caching:
            return 0
        blocks = self.pool.lookup(req.prefix_keys(self.pool.block_size))
        while blocks and blocks * self.pool.block_size >= req.num_tokens:
            blocks -= 1
        return blocks * self.pool.block_size

    def _schedule(self) -> list[tuple[Request, int]]:
        budget, scheduled, preempted = self.max_batched, [], False
        i = 0
        while i < len(self.running) and budget > 0:
            r = self.running[i]
            n = min(r.num_tokens - r.num_computed, budget)
            need = self.pool.blocks_for(r.num_computed + n) - r.held_blocks()
            victim = None
            while need > self.pool.available() and victim is not r:
                victim = self.running.pop()  # the last running request (lowest priority in FCFS)
                self._preempt(victim)
                preempted = True
            if victim is r:
                break
            self._take(r, need)
            scheduled.append((r, n))
            budget -= n
            i += 1
        while not preempted and self.waiting and len(self.running) < self.max_num_seqs and budget > 0:
            r = self.waiting[0]
            hits = self._hits(r)
            keys = r.prefix_keys(self.pool.block_size)[: hits // self.pool.block_size]
            n = min(r.num_tokens - hits, budget)
            need = self.pool.blocks_for(hits + n) - len(keys)
            if need + self.pool.evictable_among(keys) > self.pool.available():
                break
            self.waiting.popleft()
            self.pool.acquire_cached(keys)
            r.cached_keys, r.num_computed = list(keys), hits
            self._take(r, need)
            if r.first_scheduled is None:
                r.first_scheduled, r.cached_tokens = self.now, hits
                if self.pool.prefix_caching:
                    self.stats.count("prefix_cache_queries", r.prompt_tokens)
                    self.stats.count("prefix_cache_hits", hits)
            self.running.append(r)
            scheduled.append((r, n))
            budget -= n
        return scheduled

    def _step(self) -> None:
        scheduled = self._schedule()
        if not scheduled:
            head = self.waiting[0] if self.waiting else None
            if not self.running and head is not None and self.pool.blocks_for(head.num_tokens) > self.pool.usable:
                self.waiting.popleft()  # it can never fit in this engine's KV cache
                self._finish(head, self.now, "abort")
            return
        tokens = sum(n for _, n in scheduled)
        kv = sum(r.num_computed + n for r, n in scheduled)
        elapsed = self.step_time.seconds(tokens, kv, len(scheduled))
        end = self.now + elapsed
        sampled = []
        for r, n in scheduled:
            r.num_computed += n
            if r.num_computed < r.num_tokens:
                continue  # a prefill chunk that does not finish the prompt samples nothing
            r.generated += 1
            if r.first_token is None:
                r.first_token = end
                self.stats.first_token(r.prompt_tokens, r.cached_tokens, end - r.arrival)
            elif r.last_token is not None:
                self.stats.histograms["inter_token_latency_seconds"].observe(end - r.last_token)
            r.last_token = end
            sampled.append(r)
        s = self.stats
        s.histograms["iteration_tokens_total"].observe(tokens)
        s.counters["generation_tokens"] += len(sampled)
        s.counters["steps"] += 1
        s.busy_seconds += elapsed
        self.now = end
        self._after_tokens(sampled, end)

    def _after_tokens(self, reqs: list[Request], at: float) -> None:
        finished = False
        for r in reqs:
            if self.pool.prefix_caching and not r.prefix_done and r.num_computed >= r.prefix_tokens:
                r.prefix_done = True
                keys = [key for key in r.prefix_keys(self.pool.block_size) if key not in r.cached_keys]
                registered = self.pool.promote(keys[: r.private_blocks])
                r.private_blocks -= len(registered)
                r.cached_keys.extend(registered)
            if r.remaining <= 0:
                finished = True
                self._finish(r, at, r.finish_reason)
            elif r.on_tokens is not None:
                r.on_tokens(r)
        if finished:
            self.running = [r for r in self.running if not r.finished]

    def _take(self, r: Request, blocks: int) -> None:
        if blocks > 0:
            if not self.pool.allocate(blocks):
                raise KVCacheError(f"{r.request_id}: {blocks} blocks checked free but not there")
            r.private_blocks += blocks

    def _release(self, r: Request) -> None:
        self.pool.release(r.private_blocks)
        self.pool.release_cached(r.cached_keys)
        r.private_blocks, r.cached_keys = 0, []

    def _preempt(self, r: Request) -> None:
        self._release(r)
        r.num_computed, r.prefix_done = 0, False
        r.preemptions += 1
        self.stats.count("num_preemptions")
        self.waiting.appendleft(r)

    def _finish(self, r: Request, at: float, reason: str) -> None:
        self._release(r)
        r.finished_at = at
        self.done += 1
        self.stats.finished_request(r, reason)
        if r.on_tokens is not None:
            r.on_tokens(r)
        if self.on_finish is not None:
            self.on_finish(r)

