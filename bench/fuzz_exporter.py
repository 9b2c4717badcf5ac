"""Coverage-guided fuzzing (atheris, libFuzzer) of the exporter's untrusted-input readers.

``.venv/bin/python bench/fuzz_exporter.py TARGET --cases N`` runs one target for N cases and
prints its figures as JSON: cases, crashes (any exception but the reader's own error type),
hangs (a case over ``--hang-seconds``), and time per case by input size (to see that the cost
is linear in the input). Exit status 1 if anything crashed or hung. Targets:

- ``reader``: the text-format reader (``parse_bytes`` whole and selective) and the vLLM
  ``decode`` on top of it, seeded with the vLLM fixtures; only ExpositionError / ScrapeError
  may come out;
- ``policy``: a policy YAML file through ``policy.read`` and ``Policy.replace``; only PolicyError;
- ``settings``: an exporter ``--config`` YAML file through the settings loader; only SettingsError;
- ``env``: exporter settings from KVSCALE_* environment variables built from the input; only
  SettingsError.

CI runs a few thousand cases per target (tests/bench/test_fuzz_exporter.py); the long run is
``--cases 100000``. Crashing inputs are written to ``--artifacts`` (default: a temp directory).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import atheris

with atheris.instrument_imports(include=["exporter", "yaml"]):
    from exporter.contract.exposition import ExpositionError, parse_bytes
    from exporter.contract.policy import Policy, PolicyError, read
    from exporter.settings import FIELDS, SettingsError, load_settings
    from exporter.vllm.reading import SELECTION
    from exporter.vllm.scrape import ScrapeError, decode

REPO = Path(__file__).resolve().parent.parent
SEEDS = {
    "reader": sorted((REPO / "tests" / "fixtures" / "vllm").glob("*.prom")),
    "policy": [],
    "settings": [],
    "env": [],
}
SEED_TEXT = {
    "reader": [b'x{a="1"} 1\n', b"# TYPE x counter\nx_total 1\n", b'x{a="\\\\\\"",b="c"} 1 2\n# EOF\n'],
    "policy": [b"kv_target: 0.7\nqueue_target: 4\n", b"policy:\n  ttft_p95_slo_seconds: 1.5\n",
               b"kv_usage_alert: 0.9\nvllm_selector: 'job=\"vllm\"'\n"],
    "settings": [b"listen: 127.0.0.1:9400\nnvml: 'off'\ninterval: 2\nwindow: 30\nscrape_timeout: 1\n",
                 b"vllm_target: [ns/p=http://h:1/metrics]\nquantiles: [0.5, 0.9]\npolicy: {kv_target: 0.5}\n",
                 b"max_models_per_target: 3\nhttp_idle_timeout: 5\n"],
    "env": [b"INTERVAL=2\x00WINDOW=30\x00SCRAPE_TIMEOUT=1", b"QUANTILES=0.5, 0.9\x00NVML=off",
            b"VLLM_TARGET=ns/p=http://h:1\x00LISTEN=[::1]:9400"],
}
MAX_LEN = {"reader": 200_000, "policy": 4096, "settings": 4096, "env": 2048}
Check = Callable[[bytes], None]


def _reader(data: bytes) -> None:
    for only in (None, SELECTION):
        with contextlib.suppress(ExpositionError):
            parse_bytes(data, only=only)
    with contextlib.suppress(ScrapeError):
        decode(data)


class _Files:
    """One scratch file the loaders read (they take paths, as the commands do)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="kvscale-fuzz-"))
        self.path = self.dir / "input.yaml"


_FILES = _Files()


def _policy(data: bytes) -> None:
    _FILES.path.write_bytes(data)
    with contextlib.suppress(PolicyError):
        Policy().replace(read(_FILES.path), "fuzz")


def _settings(data: bytes) -> None:
    _FILES.path.write_bytes(data)
    with contextlib.suppress(SettingsError):
        load_settings(["--config", str(_FILES.path)], {})


_NAMES = sorted(FIELDS)


def _env(data: bytes) -> None:
    environ: dict[str, str] = {}
    for item in data.decode("utf-8", errors="replace").split("\x00"):
        name, _, value = item.partition("=")
        key = name.strip().upper()
        # Mostly real field names (so values get exercised), sometimes misspelled ones.
        if key and key.lower() not in FIELDS and key[:1].isalpha() and len(_NAMES):
            key = _NAMES[sum(map(ord, key)) % len(_NAMES)].upper() if len(key) % 3 else key
        environ["KVSCALE_" + key] = value
    with contextlib.suppress(SettingsError):
        load_settings([], environ)


TARGETS: dict[str, Check] = {"reader": _reader, "policy": _policy, "settings": _settings, "env": _env}


class Stats:
    """What one run found; dumped as JSON when the run reaches its case count."""

    def __init__(self, target: str, cases: int, hang_seconds: float, artifacts: Path) -> None:
        self.target, self.cases_wanted, self.hang_seconds, self.artifacts = target, cases, hang_seconds, artifacts
        self.cases = self.crashes = self.hangs = 0
        self.crash_kinds: dict[str, int] = {}
        self.by_size: dict[int, list[float]] = {}  # log2 size bucket -> [cases, seconds, bytes, slowest]
        self.started = time.perf_counter()

    def record(self, data: bytes, seconds: float, error: BaseException | None) -> None:
        self.cases += 1
        bucket = self.by_size.setdefault(max(0, math.ceil(math.log2(len(data) + 1)) - 1), [0, 0.0, 0, 0.0])
        bucket[0] += 1
        bucket[1] += seconds
        bucket[2] += len(data)
        bucket[3] = max(bucket[3], seconds)
        if seconds > self.hang_seconds:
            self.hangs += 1
            self._save(data, "hang")
        if error is not None:
            kind = f"{type(error).__name__}: {str(error)[:80]}"
            self.crashes += 1
            if kind not in self.crash_kinds:
                self._save(data, "crash")
                print(f"CRASH {kind}\n{''.join(traceback.format_exception(error))}", file=sys.stderr)
            self.crash_kinds[kind] = self.crash_kinds.get(kind, 0) + 1

    def _save(self, data: bytes, kind: str) -> None:
        self.artifacts.mkdir(parents=True, exist_ok=True)
        (self.artifacts / f"{self.target}-{kind}-{self.cases}").write_bytes(data)

    def report(self) -> dict[str, Any]:
        sizes = {}
        for bucket, (n, seconds, total, slowest) in sorted(self.by_size.items()):
            sizes[f"{1 << bucket}-{(2 << bucket) - 1} B"] = {
                "cases": int(n), "mean_us": round(1e6 * seconds / n, 1),
                "us_per_kB": round(1e6 * seconds / max(total / 1024, 1e-9), 1) if total else None,
                "slowest_ms": round(1000 * slowest, 2)}
        return {"target": self.target, "cases": self.cases, "crashes": self.crashes, "hangs": self.hangs,
                "crash_kinds": self.crash_kinds, "seconds": round(time.perf_counter() - self.started, 1),
                "time_by_input_size": sizes, "artifacts": str(self.artifacts)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("target", choices=sorted(TARGETS))
    p.add_argument("--cases", type=int, default=100_000)
    p.add_argument("--hang-seconds", type=float, default=1.0, help="a case slower than this is a hang")
    p.add_argument("--artifacts", type=Path, default=None)
    p.add_argument("--report", type=Path, default=None, help="also write the JSON report here")
    p.add_argument("--seed", type=int, default=1, help="libFuzzer's seed: the same run every time")
    args = p.parse_args(argv)
    check, stats = TARGETS[args.target], Stats(args.target, args.cases, args.hang_seconds,
                                               args.artifacts or Path(tempfile.mkdtemp(prefix="kvscale-fuzz-art-")))
    corpus = Path(tempfile.mkdtemp(prefix=f"kvscale-fuzz-{args.target}-"))
    for i, path in enumerate(SEEDS[args.target]):
        shutil.copy(path, corpus / f"seed-{i}")
    for i, text in enumerate(SEED_TEXT[args.target]):
        (corpus / f"text-{i}").write_bytes(text)

    def finish() -> None:
        report = stats.report()
        text = json.dumps(report, indent=2)
        print(text, flush=True)
        if args.report:
            args.report.write_text(text)
        sys.stdout.flush()

    def one(data: bytes) -> None:
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            check(data)
        except Exception as exc:  # the finding: anything but the reader's own error type
            error = exc
        stats.record(data, time.perf_counter() - started, error)
        if stats.cases == args.cases:
            finish()
            # libFuzzer's exit skips Python's: leave here, with the verdict as the status.
            import os

            os._exit(1 if stats.crashes or stats.hangs else 0)

    # -runs counts the seeds too; the case count above decides when to stop.
    atheris.Setup([sys.argv[0], str(corpus), f"-runs={args.cases * 2}", f"-max_len={MAX_LEN[args.target]}",
                   f"-seed={args.seed}", "-timeout=30", "-rss_limit_mb=4096", "-print_final_stats=0",
                   # Inputs of every length up to -max_len from the start (libFuzzer would grow them
                   # slowly), so the time-by-size table covers the whole range.
                   "-len_control=0", "-close_fd_mask=0"], one)
    atheris.Fuzz()
    finish()  # only if libFuzzer stopped before the case count (it ran out of -runs)
    sys.exit(1 if stats.crashes or stats.hangs else 0)


if __name__ == "__main__":
    main()
