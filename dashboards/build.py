"""Render every dashboard to Grafana JSON, deterministically, and write or compare a build.

The committed ``dashboards/json/`` is the default build; a test regenerates it and fails
on drift (the kube-prometheus-stack sync-script precedent).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards import autoscaling, common, engine, fleet, gpu
from exporter.contract.policy import Policy

# File stem -> builder. Order is the order a reader meets them: fleet first.
DASHBOARDS: dict[str, Callable[[Policy], db.Dashboard]] = {
    "fleet": fleet.build,
    "engine": engine.build,
    "gpu": gpu.build,
    "autoscaling": autoscaling.build,
}

DEFAULT_DIR = Path(__file__).resolve().parent / "json"


class BuildError(RuntimeError):
    """The build could not be written or compared; the message names the path."""


def all_panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows and the panels of collapsed rows included, in document order."""
    for panel in dash.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def _number_panels(dash: dict[str, Any]) -> None:
    # The SDK leaves ids to Grafana; fixed ids keep links like viewPanel=3 stable across builds.
    for index, panel in enumerate(all_panels(dash), start=1):
        panel["id"] = index


def render(policy: Policy) -> dict[str, dict[str, Any]]:
    """Dashboard JSON (as dicts) by file stem."""
    rendered: dict[str, dict[str, Any]] = {}
    for stem, builder in DASHBOARDS.items():
        built = json.loads(json.dumps(builder(policy).build(), cls=JSONEncoder))
        dash: dict[str, Any] = common.resolve_cluster_label(built, policy.cluster_label)
        _number_panels(dash)
        common.resolve_runbooks(dash, policy.runbook_url_base)
        rendered[stem] = dash
    return rendered


def to_text(dash: dict[str, Any]) -> str:
    return json.dumps(dash, indent=2, ensure_ascii=False) + "\n"


def files(policy: Policy) -> dict[str, str]:
    """File name -> file content of a build."""
    return {f"{stem}.json": to_text(dash) for stem, dash in render(policy).items()}


def write(out_dir: Path, policy: Policy) -> list[Path]:
    """Write the build into ``out_dir`` (created if needed); returns the paths written."""
    written = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in files(policy).items():
            path = out_dir / name
            path.write_text(text, encoding="utf-8")
            written.append(path)
    except OSError as exc:
        raise BuildError(f"cannot write dashboards to {out_dir}: {exc}") from exc
    return written


def drift(out_dir: Path, policy: Policy) -> list[str]:
    """Names of files in ``out_dir`` that are missing, stale or unexpected against a fresh build."""
    fresh = files(policy)
    try:
        present = {p.name: p.read_text(encoding="utf-8") for p in out_dir.glob("*.json")}
    except OSError as exc:
        raise BuildError(f"cannot read dashboards in {out_dir}: {exc}") from exc
    stale = [name for name, text in fresh.items() if present.get(name) != text]
    extra = [name for name in present if name not in fresh]
    return sorted(stale + extra)
