"""The image: the Dockerfile passes hadolint, and the wheel it installs (built from exactly what the
Dockerfile copies) carries everything every command needs, in a venv that holds nothing else."""

from __future__ import annotations

import configparser
import fcntl
import hashlib
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.conftest import REPO

VENV_BIN = Path(sys.executable).parent
CACHE = REPO / ".tools" / "wheel-venv"
COMMANDS = {"kvscale-exporter", "kvscale-adapter", "kvscale-alerts", "kvscale-dashboards", "kvscale-demo"}


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([str(VENV_BIN / "hadolint"), "--failure-threshold", "info", "Dockerfile"],
                            cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_as_a_numeric_non_root_user_from_a_pinned_base() -> None:
    lines = [line.split() for line in (REPO / "Dockerfile").read_text(encoding="utf-8").splitlines() if line.strip()]
    bases = [words[1] for words in lines if words[0] == "FROM"]
    assert len(bases) == 2 and all(b.startswith("python:3.") and "-slim" in b and b.count(".") >= 2 for b in bases)
    user = [words[1] for words in lines if words[0] == "USER"][-1]
    assert all(part.isdigit() and int(part) > 0 for part in user.split(":"))
    assert [w for w in lines if w[0] == "ENTRYPOINT"][-1][1].startswith('["')  # exec form: no shell


def _build_context(ctx: Path) -> None:
    """What the build stage copies, per the Dockerfile's COPY lines (before the final FROM)."""
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    build_stage = text[: text.rindex("\nFROM ")]
    for line in build_stage.splitlines():
        words = line.split()
        if words[:1] == ["COPY"]:
            for source in words[1:-1]:
                src = REPO / source
                if src.is_dir():
                    shutil.copytree(src, ctx / source, ignore=shutil.ignore_patterns(
                        "__pycache__", "*.pyc", "*.so", "*.so.1"))
                else:
                    shutil.copy2(src, ctx / source)


class Installed(NamedTuple):
    wheel: Path
    venv: Path


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """A venv with the built wheel and its dependencies; cached per pyproject.toml (dependencies only)."""
    tmp = tmp_path_factory.mktemp("wheel")
    ctx = tmp / "ctx"
    ctx.mkdir()
    _build_context(ctx)
    subprocess.run([str(VENV_BIN / "pip"), "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"),
                    str(ctx)], check=True, timeout=300, capture_output=True)
    wheel = next((tmp / "dist").glob("kvscale-*.whl"))
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:16]
    venv = CACHE / key
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent test runs share the cache
        if not (venv / ".complete").exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(wheel)],
                           check=True, timeout=900)
            (venv / ".complete").touch()
        else:
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "--no-deps",
                            "--force-reinstall", str(wheel)], check=True, timeout=300)
        yield Installed(wheel, venv)


def _scripts(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
        parser = configparser.ConfigParser()
        parser.read_string(archive.read(name).decode())
    return set(parser["console_scripts"])


def _run(venv: Path, args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(cwd), "LANG": "C.UTF-8"}
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_every_command_answers_help_from_the_installed_wheel(installed: Installed, tmp_path: Path) -> None:
    scripts = _scripts(installed.wheel)
    assert scripts >= COMMANDS
    venv = installed.venv
    # Nothing importable from the checkout: the venv holds the wheel only, and runs away from the tree.
    located = _run(venv, ["python", "-c", "import exporter; print(exporter.__file__)"], tmp_path, 60)
    assert str(venv) in located.stdout and str(REPO / "exporter") not in located.stdout
    for script in sorted(scripts):
        result = _run(venv, [script, "--help"], tmp_path, 120)
        assert result.returncode == 0, f"{script} --help: {result.stderr[-1500:]}"
        assert "usage" in result.stdout.lower(), script


def test_demo_runs_from_the_installed_wheel(installed: Installed, tmp_path: Path) -> None:
    result = _run(installed.venv, ["kvscale-demo", "--duration", "5"], tmp_path, 240)
    assert result.returncode == 0, (result.stdout[-1500:], result.stderr[-3000:])


def test_pip_check_passes(installed: Installed, tmp_path: Path) -> None:
    result = _run(installed.venv, ["python", "-m", "pip", "check"], tmp_path, 120)
    assert result.returncode == 0, result.stdout + result.stderr
    # The Dockerfile installs this exact file name.
    assert installed.wheel.name == "kvscale-0.1.0-py3-none-any.whl"
