"""The reader's cost grows linearly with its input, whatever the input (issue 11, defect 1).

A quadratic (backtracking) pattern took ~1 s on a 10 kB label block and 66 s on 100 kB,
holding the GIL. Each adversarial shape below is grown 1 kB -> 10 kB -> 100 kB -> 1 MB;
each step multiplies the input by 10 and must not multiply the parse time by more than
30 (linear gives ~10, quadratic ~100). Sizes go up in order and the test stops at the
first step that fails, so a quadratic reader fails in about a second instead of hanging.
The time of one parse is this thread's CPU time (other processes on a loaded machine do not
count), the best of several autoranged batches (as ``timeit`` measures).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import pytest

from exporter.contract.exposition import ExpositionError, parse
from exporter.vllm.reading import SELECTION

SIZES = (1_000, 10_000, 100_000, 1_000_000)
GROWTH_BOUND = 30.0
RUNNING = "vllm:num_requests_running"


def _block_spaces(n: int) -> str:  # the reported input: a label block with a long run of spaces
    return f'{RUNNING}{{a="1"' + " " * n + "x} 1\n"


def _block_spaces_valid(n: int) -> str:
    return f'{RUNNING}{{a="1"' + " " * n + "} 1\n"


def _spaces_around_equals(n: int) -> str:
    return f"{RUNNING}{{a" + " " * n + "=" + " " * n + '"1" ' + " " * n + "!} 1\n"


def _unterminated_value(n: int) -> str:
    return f'{RUNNING}{{a="' + "b" * n + "} 1\n"


def _commas(n: int) -> str:
    return f'{RUNNING}{{a="1"' + "," * n + "} 1\n"


def _escapes(n: int) -> str:
    return f'{RUNNING}{{a="' + "\\\\" * (n // 2) + '"} 1\n'


def _many_labels(n: int) -> str:
    pairs = ",".join(f'l{i}="v"' for i in range(n // 7))
    return f"{RUNNING}{{{pairs},}} 1\n"


def _spaces_after_value(n: int) -> str:
    return f"{RUNNING} 1" + " " * n + "x\n"


def _spaces_before_value(n: int) -> str:
    return f"{RUNNING}" + " " * n + "1 2 x\n"


def _long_name(n: int) -> str:
    return "v" * n + "{ 1\n"


def _type_line(n: int) -> str:
    return "# TYPE x" + " " * n + "counter y\n"


def _many_lines(n: int) -> str:
    return "".join(f'{RUNNING}{{engine="{i}"}} 1\n' for i in range(n // 40))


def _many_braces(n: int) -> str:
    return f"{RUNNING}" + "{" * n + " 1\n"


def _quotes_and_equals(n: int) -> str:
    return f"{RUNNING}{{" + '="' * (n // 2) + "} 1\n"


def _duplicate_at_end(n: int) -> str:
    lines = [f'{RUNNING}{{engine="{i}"}} 1\n' for i in range(n // 40)]
    return "".join(lines) + lines[0]


SHAPES: dict[str, Callable[[int], str]] = {f.__name__.lstrip("_"): f for f in (
    _block_spaces, _block_spaces_valid, _spaces_around_equals, _unterminated_value, _commas, _escapes,
    _many_labels, _spaces_after_value, _spaces_before_value, _long_name, _type_line, _many_lines,
    _many_braces, _quotes_and_equals, _duplicate_at_end)}


def _parse_seconds(text: str, selected: bool) -> float:
    """Best per-call CPU time over 5 batches, each batch long enough (>= 20 ms) to time."""
    def once() -> None:
        with contextlib.suppress(ExpositionError):
            parse(text, only=SELECTION if selected else None)

    calls = 1
    while True:
        started = time.thread_time()
        for _ in range(calls):
            once()
        took = time.thread_time() - started
        if took >= 0.02 or calls >= 1 << 16:
            break
        calls *= 4
    best = took / calls
    for _ in range(4):
        started = time.thread_time()
        for _ in range(calls):
            once()
        best = min(best, (time.thread_time() - started) / calls)
    return best


@pytest.mark.parametrize("selected", [False, True], ids=["all", "vllm-selection"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_parse_time_grows_linearly_with_the_input(shape: str, selected: bool) -> None:
    make = SHAPES[shape]
    previous: float | None = None
    for size in SIZES:
        text = make(size)
        assert size <= len(text) <= 3 * size + 100  # the shape really is of this size
        seconds = _parse_seconds(text, selected)
        if previous is not None:
            growth = seconds / previous
            assert growth <= GROWTH_BOUND, f"{shape}: x10 input at {size} B took x{growth:.0f} time"
        previous = seconds
