"""The kvscale side of the conformance tier: the vLLM venv, and renders from vLLM's own code.

kvscale's venv never imports vllm: ``.ci/vllm-env.sh VERSION`` builds (once; it is cached
under .tools/) a venv with the real wheel, kvscale is installed there without dependencies
(so vLLM's plugin loader finds the ``vllm.stat_logger_plugins`` entry point as it would in
a vLLM image with ``kvscale[vllm]``), and tests/fixtures/vllm/render/scenarios.py runs there
as a subprocess over a JSON spec.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RENDERER = REPO / "tests" / "fixtures" / "vllm" / "render" / "scenarios.py"
DEFAULT_VERSION = "0.33.0"
"""The release CI checks; ``KVSCALE_VLLM_VERSION=0.12.0 .venv/bin/pytest -m vllm`` checks another."""


def version() -> str:
    return os.environ.get("KVSCALE_VLLM_VERSION", DEFAULT_VERSION)


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


class RenderError(RuntimeError):
    """The vLLM venv could not be built or the renderer failed (its output is in the message)."""


def vllm_python(release: str) -> Path:
    """The vLLM venv's interpreter, built by the setup script if missing, with kvscale installed in it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    steps = [["bash", str(REPO / ".ci" / "vllm-env.sh"), release]]
    python = REPO / ".tools" / f"vllm-{release}" / "bin" / "python"
    steps.append([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                  "--no-build-isolation", "-e", str(REPO)])
    for step in steps:
        done = subprocess.run(step, cwd=REPO, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            output = done.stdout[-4000:] + done.stderr[-4000:]
            raise RenderError(f"{' '.join(step)} failed ({done.returncode}):\n{output}")
    return python


@dataclass(frozen=True)
class Render:
    body: str
    content_type: str
    loggers: tuple[str, ...]
    """The stat loggers vLLM's StatLoggerManager built (class names)."""


def render(python: Path, spec: dict[str, Any], out: Path) -> tuple[str, dict[str, list[Render]]]:
    """Run the scenarios through vLLM's code; (vLLM's version, each scenario's scrapes in order)."""
    env = {**os.environ, "VLLM_TARGET_DEVICE": "cpu", "PYTHONPATH": str(RENDERER.parent)}
    done = subprocess.run([str(python), str(RENDERER), str(out)], input=json.dumps(spec), cwd=RENDERER.parent,
                          env=env, capture_output=True, text=True, check=False, timeout=600)
    if done.returncode != 0:
        raise RenderError(f"renderer failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-6000:]}")
    result = json.loads(out.read_text())
    renders = {name: [Render(r["body"], r["content_type"], tuple(r["loggers"])) for r in steps]
               for name, steps in result["renders"].items()}
    return result["vllm_version"], renders


if __name__ == "__main__":  # build the venv ahead of a run: python -m tests.vllm.renderer [VERSION]
    print(vllm_python(sys.argv[1] if len(sys.argv) > 1 else version()))
