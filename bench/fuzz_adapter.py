"""Coverage-guided fuzzing of the adapter (atheris): the label-selector parser and URL routing.

    .venv/bin/python bench/fuzz_adapter.py                       # both targets, 100,000 cases each, then sizes
    .venv/bin/python bench/fuzz_adapter.py --runs 2000 --no-sizes  # the short CI version (tests/adapter/test_fuzz.py)
    .venv/bin/python bench/fuzz_adapter.py --target selectors --runs 1000000

Each target runs in its own process (libFuzzer owns it): the targets and their properties are in
tests/adapter/fuzz_targets.py. A crash or a hang (an input over --timeout seconds) stops that target
and leaves the input under --artifacts. Then the time of adversarial inputs is measured against their
size (1 kB to 1 MB): parsing must stay linear, and the routing answers within the request-line limit.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TARGETS = ("selectors", "routing")


def run_target(name: str, runs: int, timeout: int, artifacts: Path) -> None:
    """In this process: fuzz one target under atheris until ``runs`` cases, a crash or a hang."""
    import atheris

    with atheris.instrument_imports(include=["adapter"]):
        import adapter.selectors
        import adapter.server
        import adapter.service  # noqa: F401
        from tests.adapter import fuzz_targets

    if name == "selectors":
        def one(data: bytes) -> None:
            fuzz_targets.check_selector(fuzz_targets.selector_input(data))
    else:
        target = fuzz_targets.RoutingTarget()

        def one(data: bytes) -> None:
            target.check(fuzz_targets.routing_input(data))

    artifacts.mkdir(parents=True, exist_ok=True)
    atheris.Setup([sys.argv[0], f"-runs={runs}", f"-timeout={timeout}", "-max_len=4096",
                   f"-artifact_prefix={artifacts}/{name}-", "-print_final_stats=1"], one)
    atheris.Fuzz()


def fuzz(name: str, runs: int, timeout: int, artifacts: Path) -> dict[str, object]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, __file__, "--target", name, "--runs", str(runs), "--timeout", str(timeout),
                           "--artifacts", str(artifacts)], capture_output=True, text=True, check=False)
    out = proc.stdout + proc.stderr
    done = re.search(r"Done (\d+) runs in (\d+) second", out)
    cov = re.findall(r"cov: (\d+)", out)
    return {"target": name, "rc": proc.returncode, "cases": int(done.group(1)) if done else None,
            "seconds": round(time.monotonic() - started, 1), "coverage": int(cov[-1]) if cov else None,
            "crashes": sorted(p.name for p in artifacts.glob(f"{name}-crash-*")),
            "hangs": sorted(p.name for p in artifacts.glob(f"{name}-timeout-*")),
            "tail": "" if proc.returncode == 0 else out[-3000:]}


ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "spaces": lambda n: "a" + " " * n + "=b",
    "commas": lambda n: "a," * (n // 2) + "a",
    "set": lambda n: "a in (" + "b," * (n // 2) + "c)",
    "parens": lambda n: "a in " + "(" * n,
    "long key": lambda n: "a" * n + "=b",
    "bangs": lambda n: "!" * n,
}


def sizes() -> None:
    from adapter.selectors import SelectorError, parse_selector
    from tests.adapter import fuzz_targets

    print("selector parser, seconds per input by size (linear: x10 size ~ x10 time):")
    for name, make in ADVERSARIAL.items():
        row = []
        for size in (1_000, 10_000, 100_000, 1_000_000):
            text = make(size)
            started = time.perf_counter()
            with contextlib.suppress(SelectorError):
                parse_selector(text)
            row.append(f"{size // 1000:>5} kB {time.perf_counter() - started:8.4f} s")
        print(f"  {name:<9} " + "  ".join(row))
    target = fuzz_targets.RoutingTarget()
    print("routing, seconds per request by labelSelector size (over 8 KiB the request line is refused, 400):")
    row = []
    for size in (1_000, 4_000, 8_000, 100_000):
        path = ("/apis/custom.metrics.k8s.io/v1beta2/namespaces/llm/pods/*/kvscale_vllm_requests_waiting"
                "?labelSelector=" + "a%20" * (size // 4) + "%3Db").encode()
        started = time.perf_counter()
        target.check(path)
        row.append(f"{size // 1000:>4} kB {time.perf_counter() - started:7.4f} s")
    print("  " + "  ".join(row))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", choices=TARGETS, help="run one target in this process (used by the driver)")
    p.add_argument("--runs", type=int, default=100_000, help="cases per target")
    p.add_argument("--timeout", type=int, default=10, help="seconds before one input counts as a hang")
    p.add_argument("--artifacts", type=Path, default=None, help="where crashing or hanging inputs are kept")
    p.add_argument("--no-sizes", action="store_true", help="skip the time-against-size measurement")
    args = p.parse_args()
    artifacts = args.artifacts or Path(tempfile.mkdtemp(prefix="kvscale-fuzz-adapter-"))
    if args.target:
        run_target(args.target, args.runs, args.timeout, artifacts)
        return
    failed = False
    for name in TARGETS:
        result = fuzz(name, args.runs, args.timeout, artifacts)
        print(" ".join(f"{k}={v}" for k, v in result.items() if k != "tail"))
        if result["rc"] != 0:
            failed = True
            print(result["tail"])
    if not args.no_sizes:
        sizes()
    print(f"artifacts: {artifacts}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
