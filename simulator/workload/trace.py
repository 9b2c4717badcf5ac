"""Request traces: a CSV of (arrival time, prompt tokens, output tokens), and the shipped Azure trace.

The Azure LLM inference trace 2023 (conversation service, one hour, CC-BY 4.0; see
``simulator/data/azure-llm-inference-2023/README.md`` for its attribution) ships as
package data and is read through importlib.resources. Bad rows are an error naming the
line, never skipped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

AZURE_CONV = "azure-llm-inference-2023/conv.csv"
MAX_TOKENS_PER_REQUEST = 1_000_000
# Accepted header spellings: ours, and the Splitwise/vidur columns the Azure trace uses.
_COLUMNS = {
    "arrival": ("arrival_time", "arrived_at", "timestamp"),
    "prompt": ("prompt_tokens", "num_prefill_tokens", "context_tokens"),
    "output": ("output_tokens", "num_decode_tokens", "generated_tokens"),
}


class TraceError(ValueError):
    """A trace file is unreadable or has a bad row; the message names the line."""


@dataclass(frozen=True, slots=True)
class Arrival:
    at: float
    prompt_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Workload:
    """Arrivals sorted by time over ``duration`` simulated seconds."""

    name: str
    arrivals: tuple[Arrival, ...]
    duration: float

    def rate(self) -> float:
        return len(self.arrivals) / self.duration if self.duration > 0 else 0.0

    def scaled(self, time_scale: float) -> Workload:
        """Arrival times multiplied by ``time_scale`` (0.5 replays twice as fast: double the rate)."""
        if not time_scale > 0:
            raise TraceError(f"time scale must be > 0, got {time_scale}")
        arrivals = tuple(Arrival(a.at * time_scale, a.prompt_tokens, a.output_tokens) for a in self.arrivals)
        return Workload(f"{self.name} x{1 / time_scale:g}", arrivals, self.duration * time_scale)

    def head(self, seconds: float) -> Workload:
        """The first ``seconds`` of the workload."""
        return Workload(self.name, tuple(a for a in self.arrivals if a.at < seconds), min(seconds, self.duration))


def _column(header: Sequence[str], role: str) -> int:
    for name in _COLUMNS[role]:
        if name in header:
            return header.index(name)
    raise TraceError(f"trace header has no {role} column (one of {', '.join(_COLUMNS[role])}): {list(header)}")


def parse_csv(text: str, name: str = "trace") -> Workload:
    """A workload from CSV text with a header row; times in seconds from any origin."""
    rows = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(rows)]
    except StopIteration:
        raise TraceError(f"{name}: empty trace") from None
    cols = [_column(header, role) for role in ("arrival", "prompt", "output")]
    arrivals: list[Arrival] = []
    for line, row in enumerate(rows, start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        try:
            at, prompt, output = float(row[cols[0]]), int(row[cols[1]]), int(row[cols[2]])
        except (IndexError, ValueError) as exc:
            raise TraceError(f"{name} line {line}: {exc}") from exc
        if not (at >= 0 and 0 < prompt <= MAX_TOKENS_PER_REQUEST and 0 < output <= MAX_TOKENS_PER_REQUEST):
            raise TraceError(f"{name} line {line}: need time >= 0 and token counts in [1, {MAX_TOKENS_PER_REQUEST}]")
        arrivals.append(Arrival(at, prompt, output))
    if not arrivals:
        raise TraceError(f"{name}: no requests")
    arrivals.sort(key=lambda a: a.at)
    origin = arrivals[0].at
    shifted = tuple(Arrival(a.at - origin, a.prompt_tokens, a.output_tokens) for a in arrivals)
    return Workload(name, shifted, max(shifted[-1].at, 1.0))


def load_csv(path: Path) -> Workload:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"cannot read trace {path}: {exc}") from exc
    return parse_csv(text, path.name)


def azure_conversation() -> Workload:
    """The shipped hour of Azure's LLM conversation service (19,366 requests)."""
    text = resources.files("simulator").joinpath("data", *AZURE_CONV.split("/")).read_text("utf-8")
    return parse_csv(text, "azure-conv-2023")


def lengths(workload: Workload) -> list[tuple[int, int]]:
    """(prompt, output) pairs: the empirical length distribution scenarios sample from."""
    return [(a.prompt_tokens, a.output_tokens) for a in workload.arrivals]
