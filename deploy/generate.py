"""Regenerate everything derived from the catalog and the policy, or check that it is current.

    .venv/bin/python deploy/generate.py [--policy FILE] [--check]

Every generated file in the repository is a row of ``OUTPUTS``: a path (a file, or a
directory the row owns entirely) and a function from the policy to its files' text. Adding
a generated artefact is one row. ``--check`` writes nothing and exits 1 naming each stale
file (different, missing, or left over in an owned directory), which is what the drift
test and CI run (the kube-prometheus-stack sync-script precedent). Committed outputs are
built from the default policy; ``--policy`` builds a customised copy for inspection.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: import the tree this file sits in, not an installed copy
    sys.path.insert(0, str(ROOT))

from alerts.render import build_groups, render_files  # noqa: E402
from dashboards import build as dashboards  # noqa: E402
from deploy import chart_sync  # noqa: E402
from exporter.contract import docs  # noqa: E402
from exporter.contract.policy import Policy, PolicyError, load  # noqa: E402

SELF = "the file itself"  # the key of a single-file output's text


@dataclass(frozen=True)
class Output:
    """One generated artefact: ``path`` relative to the repository root; ``render`` gives name -> text,
    names relative to ``path`` (a directory), or the single key ``SELF`` when ``path`` is a file."""

    path: str
    render: Callable[[Policy], dict[str, str]]


OUTPUTS: tuple[Output, ...] = (
    Output("docs/metrics.md", lambda policy: {SELF: docs.render()}),
    Output("alerts/rules", lambda policy: render_files(build_groups(policy))),
    Output("dashboards/json", dashboards.files),
    # The Helm chart: rules and dashboards as templates the values' policy fills in, the values schema
    # embedding the policy's, and values.yaml's policy block.
    Output("deploy/helm/kvscale/files/prometheusrule.json", lambda policy: {SELF: chart_sync.rules()}),
    Output("deploy/helm/kvscale/files/dashboards", lambda policy: chart_sync.dashboards()),
    Output("deploy/helm/kvscale/values.schema.json", lambda policy: {SELF: chart_sync.schema()}),
    Output("deploy/helm/kvscale/values.yaml", lambda policy: {SELF: chart_sync.values(policy)}),
)


def expected(output: Output, policy: Policy, root: Path = ROOT) -> dict[Path, str]:
    """Absolute path -> text the output should have."""
    base = root / output.path
    return {base if name == SELF else base / name: text for name, text in output.render(policy).items()}


def stale(policy: Policy, root: Path = ROOT, outputs: Sequence[Output] = OUTPUTS) -> list[Path]:
    """Generated files that differ, are missing, or are left over in an output directory."""
    found: list[Path] = []
    for output in outputs:
        want = expected(output, policy, root)
        for path, text in want.items():
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                found.append(path)
        base = root / output.path
        if base.is_dir():
            found += sorted(p for p in base.iterdir() if p.is_file() and p not in want)
    return found


def write(policy: Policy, root: Path = ROOT, outputs: Sequence[Output] = OUTPUTS) -> list[Path]:
    """Write every output; files an output directory no longer produces are removed."""
    written: list[Path] = []
    for output in outputs:
        want = expected(output, policy, root)
        base = root / output.path
        if base.is_dir():
            for leftover in (p for p in base.iterdir() if p.is_file() and p not in want):
                leftover.unlink()
        for path, text in sorted(want.items()):
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
                written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy/generate.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", metavar="FILE", help="policy YAML file (as every command's --policy); "
                                                          "default: the built-in policy, which the committed files use")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 naming each stale file")
    args = parser.parse_args(argv)
    try:
        # Only the flag: the committed outputs are the defaults, whatever KVSCALE_POLICY a shell has.
        policy = load(Path(args.policy)) if args.policy else Policy()
    except PolicyError as exc:
        print(f"generate: error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        found = stale(policy)
        for path in found:
            print(f"{path.relative_to(ROOT)}: stale; run .venv/bin/python deploy/generate.py", file=sys.stderr)
        return 1 if found else 0
    try:
        for path in write(policy):
            print(path.relative_to(ROOT))
    except OSError as exc:
        print(f"generate: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
