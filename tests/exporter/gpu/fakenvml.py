"""The fake libnvidia-ml of the tests: profiles, and building it with gcc.

The library's source and GPU profiles are in tests/fixtures/nvml (see fake_nvml.c for
the profile format and the fault-injection lines). Any test may use it in-process by
passing the built file to ``build_collector(library_path=...)`` with
``FAKE_NVML_PROFILE`` set in the environment.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import FIXTURES

NVML_FIXTURES = FIXTURES / "nvml"
H100X8 = NVML_FIXTURES / "h100x8.profile"
MIG = NVML_FIXTURES / "mig.profile"


def profile_uuids(profile: Path, kind: str = "gpu") -> list[str]:
    """UUIDs of the profile's GPUs (or MIG devices), in NVML order."""
    rows = [line.split("|") for line in profile.read_text().splitlines() if line.startswith(kind + "|")]
    return [row[1] if kind == "gpu" else row[2] for row in rows]


def compile_fake(out_dir: Path, *defines: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc is needed to build the fake libnvidia-ml.so.1")
    done = subprocess.run([gcc, "-shared", "-fPIC", "-O2", "-Wall", "-Werror", *defines,
                           "-Wl,-soname,libnvidia-ml.so.1", "-o", str(out_dir / "libnvidia-ml.so.1"),
                           str(NVML_FIXTURES / "fake_nvml.c")], check=False, capture_output=True, text=True)
    if done.returncode:
        pytest.fail(f"gcc failed on fake_nvml.c:\n{done.stderr}")
    return out_dir


@dataclass(frozen=True)
class FakeLibs:
    """Directories for LD_LIBRARY_PATH, each holding a libnvidia-ml.so.1 (or none)."""

    full: Path
    old_driver: Path
    """Built without nvmlEventSetWait_v2 and the MIG calls, as an older driver."""
    empty: Path
    """No library at all: NVML is missing."""

    @property
    def library(self) -> Path:
        return self.full / "libnvidia-ml.so.1"


def build_fake_libs(root: Path) -> FakeLibs:
    """Compile both variants under ``root``."""
    (root / "empty").mkdir(parents=True, exist_ok=True)
    return FakeLibs(full=compile_fake(root / "full"), old_driver=compile_fake(root / "old", "-DFAKE_NVML_OLD_DRIVER"),
                    empty=root / "empty")
