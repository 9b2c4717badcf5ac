"""A request as the engine sees it: lengths, progress through the scheduler, timestamps."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

_ids = itertools.count()


@dataclass(slots=True, eq=False)
class Request:
    """One completion request. ``output_tokens`` is how many tokens it generates (then stops).

    ``prefix_group``/``prefix_tokens`` name a prompt prefix shared with other requests
    (a system prompt), which prefix caching can reuse. Everything below ``arrival`` is
    the engine's bookkeeping.
    """

    prompt_tokens: int
    output_tokens: int
    arrival: float = 0.0
    prefix_group: str | None = None
    prefix_tokens: int = 0
    finish_reason: str = "stop"
    max_tokens: int | None = None
    request_id: str = field(default_factory=lambda: f"cmpl-{next(_ids)}")
    on_tokens: Callable[[Request], None] | None = None
    """Called after the request gains tokens or finishes (the HTTP server streams from it)."""

    generated: int = 0
    num_computed: int = 0
    private_blocks: int = 0
    cached_keys: list[Hashable] = field(default_factory=list)
    cached_tokens: int = 0
    prefix_done: bool = False
    preemptions: int = 0
    first_scheduled: float | None = None
    first_token: float | None = None
    last_token: float | None = None
    finished_at: float | None = None
    engine_index: int = 0

    def __post_init__(self) -> None:
        if self.prompt_tokens < 1 or self.output_tokens < 1:
            raise ValueError(f"a request needs >= 1 prompt and >= 1 output token, got "
                             f"{self.prompt_tokens}/{self.output_tokens}")
        if self.max_tokens is None:
            self.max_tokens = self.output_tokens
        self.prefix_tokens = min(max(0, self.prefix_tokens), self.prompt_tokens)

    @property
    def num_tokens(self) -> int:
        return self.prompt_tokens + self.generated

    @property
    def remaining(self) -> int:
        return self.output_tokens - self.generated

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def prefix_keys(self, block_size: int) -> list[Hashable]:
        """Keys of the full blocks inside the shared prefix (what prefix caching can reuse)."""
        if self.prefix_group is None:
            return []
        return [(self.prefix_group, i) for i in range(self.prefix_tokens // block_size)]

    def held_blocks(self) -> int:
        return self.private_blocks + len(self.cached_keys)
