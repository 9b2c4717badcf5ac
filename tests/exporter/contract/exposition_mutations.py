"""Ways a broken engine, proxy or network mangles a /metrics body, as hypothesis strategies.

Each mutation is a pure function of (body, seeded Random); :func:`mutated` applies one to
four of them to a drawn body, so a failing example replays from hypothesis' own seed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from hypothesis import strategies as st

BAD_VALUES = ["NaN", "+Inf", "-Inf", "nan", "inf", "-0", "1e999", "-1e999", "garbage", "1_000", "0x1F", "",
              " ", "1 2 3", "1 # {a=\"b\"} 1", "1 notatime", "١٢", "1e", "--1", "+-Inf", "Infinity", "\t1"]
INSERTS = ['\\"', "\\\\", "\\n", "\\", "\\x", '"', "}", "{", ",", "=", "\n", " ", '\\"}', "ü", "\r"]


def _truncate(body: bytes, rnd: random.Random) -> bytes:
    return body[: rnd.randrange(len(body) + 1)]


def _flip(body: bytes, rnd: random.Random) -> bytes:
    at = rnd.randrange(len(body)) if body else 0
    return body[:at] + bytes([rnd.randrange(256)]) + body[at + 1:]


def _insert_bytes(body: bytes, rnd: random.Random) -> bytes:
    at = rnd.randrange(len(body) + 1)
    return body[:at] + rnd.randbytes(rnd.randrange(1, 8)) + body[at:]


def _duplicate_line(body: bytes, rnd: random.Random) -> bytes:
    lines = body.split(b"\n")
    lines.insert(rnd.randrange(len(lines) + 1), lines[rnd.randrange(len(lines))])
    return b"\n".join(lines)


def shuffle_lines(body: bytes, rnd: random.Random) -> bytes:
    lines = body.rstrip(b"\n").split(b"\n")
    rnd.shuffle(lines)
    return b"\n".join(lines) + b"\n"


def _sample_lines(lines: list[bytes]) -> list[int]:
    return [i for i, line in enumerate(lines) if line and not line.startswith(b"#")]


def _replace_value(body: bytes, rnd: random.Random) -> bytes:
    lines = body.split(b"\n")
    samples = _sample_lines(lines)
    if samples:
        i = rnd.choice(samples)
        head = lines[i].rpartition(b" ")[0] if rnd.random() < 0.8 else lines[i]
        lines[i] = head + b" " + rnd.choice(BAD_VALUES).encode()
    return b"\n".join(lines)


def _escape_in_label(body: bytes, rnd: random.Random) -> bytes:
    lines = body.split(b"\n")
    labelled = [i for i in _sample_lines(lines) if b'="' in lines[i]]
    if labelled:
        i = rnd.choice(labelled)
        starts = [k + 2 for k in range(len(lines[i])) if lines[i].startswith(b'="', k)]
        at = rnd.choice(starts) + rnd.randrange(3)
        lines[i] = lines[i][:at] + rnd.choice(INSERTS).encode() + lines[i][at:]
    return b"\n".join(lines)


def _replace_label_value(body: bytes, rnd: random.Random) -> bytes:
    lines = body.split(b"\n")
    labelled = [i for i in _sample_lines(lines) if b'="' in lines[i]]
    vllm = [i for i in labelled if lines[i].startswith(b"vllm")]
    if labelled:  # mostly vLLM lines: those are the ones decode() reads
        i = rnd.choice(vllm if vllm and rnd.random() < 0.8 else labelled)
        pieces = lines[i].split(b'="')
        k = rnd.randrange(1, len(pieces))
        _, quote, rest = pieces[k].partition(b'"')
        pieces[k] = rnd.choice(BAD_VALUES + INSERTS).encode() + quote + rest
        lines[i] = b'="'.join(pieces)
    return b"\n".join(lines)


TYPES = ["counter", "gauge", "histogram", "summary", "untyped", "unknown", "info", "stateset", "gaugehistogram",
         "bogus", "", "counter counter"]


def _retype(body: bytes, rnd: random.Random) -> bytes:
    """Declare a family as another type: a wrong type must be a typed error, not a misread."""
    lines = body.split(b"\n")
    declared = [i for i, line in enumerate(lines) if line.startswith(b"# TYPE ")]
    if declared:
        i = rnd.choice(declared)
        lines[i] = lines[i].rsplit(b" ", 1)[0] + b" " + rnd.choice(TYPES).encode()
    return b"\n".join(lines)


def respace_line(line: bytes, rnd: random.Random) -> bytes:
    """``line`` with spaces or tabs added where the format allows them inside the braces:
    after '{' and ',', around '=', before '}' (never inside a quoted value)."""
    out: list[str] = []
    inside = quoted = escaped = False
    for char in line.decode("utf-8"):
        if quoted:
            out.append(char)
            quoted = escaped or char != '"'
            escaped = not escaped and char == "\\"
            continue
        gap = rnd.choice(["", " ", "  ", "\t"])
        if inside and char in "}=":
            out.append(gap)
        out.append(char)
        quoted = inside and char == '"'
        inside = (inside or char == "{") and char != "}"
        if inside and char in "{,=":
            out.append(gap)
    return "".join(out).encode("utf-8")


def respace(body: bytes, rnd: random.Random) -> bytes:
    """Whitespace added inside the braces of a few sample lines: the same samples, spelled differently."""
    lines = body.split(b"\n")
    for i in rnd.sample(_sample_lines(lines), min(20, len(_sample_lines(lines)))):
        lines[i] = respace_line(lines[i], rnd)
    return b"\n".join(lines)


MUTATIONS = [_truncate, _flip, _insert_bytes, _duplicate_line, shuffle_lines, _replace_value, _escape_in_label,
             _replace_label_value, _retype]


@st.composite
def mutated(draw: st.DrawFn, bodies: Sequence[bytes]) -> bytes:
    """One of ``bodies`` with one to four random mutations applied."""
    body = draw(st.sampled_from(bodies))
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))
    for mutation in draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=4)):
        body = mutation(body, rnd)
    return body
