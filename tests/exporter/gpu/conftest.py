"""Fixtures of the GPU tests: the fake libnvidia-ml compiled with gcc, a child process
running the real collector over it, and a fake kubelet serving pod-resources over gRPC."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYTHON, REPO
from tests.exporter.gpu.fakenvml import H100X8, FakeLibs, build_fake_libs
from tests.exporter.gpu.kubelet import FakeKubelet

REPLY_TIMEOUT = 60.0  # generous: a loaded 2-core CI machine


@pytest.fixture(scope="session")
def fake_libs(tmp_path_factory: pytest.TempPathFactory) -> FakeLibs:
    return build_fake_libs(tmp_path_factory.mktemp("fake-nvml"))


@dataclass
class Cycle:
    """One collection's outcome, as the child reported it."""

    success: bool
    series: list[tuple[str, dict[str, str], float]]
    pod_gpus: dict[tuple[str, str], float]

    def of(self, family: str) -> list[tuple[dict[str, str], float]]:
        return [(labels, value) for name, labels, value in self.series if name == family]

    def by_gpu(self, family: str) -> dict[str, float]:
        return {labels["gpu"]: value for labels, value in self.of(family)}

    def labels(self, family: str, gpu: str) -> dict[str, str]:
        return next(labels for labels, _ in self.of(family) if labels["gpu"] == gpu)

    def value(self, family: str, **match: str) -> float:
        hits = [v for labels, v in self.of(family) if all(labels.get(k) == m for k, m in match.items())]
        assert len(hits) == 1, (family, match, hits)
        return hits[0]


class NvmlChild:
    """The real GPU collector in a child process with the fake library on LD_LIBRARY_PATH."""

    def __init__(self, tmp: Path, *, lib_dir: Path, profile: Path | None, mode: str = "on",
                 socket: str | None = None, node: str = "gpu-node-1", timeout: float = 30.0,
                 library_path: str | None = None, dra: str = "off", apiserver: str | None = None) -> None:
        self.control = tmp / "control"
        self.control.write_text("")
        self.stderr = tmp / "child.log"
        env = {**os.environ, "LD_LIBRARY_PATH": str(lib_dir), "FAKE_NVML_CONTROL": str(self.control)}
        env.pop("FAKE_NVML_PROFILE", None)
        if profile is not None:
            env["FAKE_NVML_PROFILE"] = str(profile)
        options = json.dumps({"mode": mode, "node": node, "socket": socket, "timeout": timeout,
                              "library_path": library_path, "dra": dra, "apiserver": apiserver})
        with open(self.stderr, "wb") as err:
            self.proc = subprocess.Popen([PYTHON, "-m", "tests.exporter.gpu.nvml_child", options], cwd=REPO, env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
        self.hello = self._reply()

    def _reply(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], REPLY_TIMEOUT)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            raise AssertionError(f"no reply from the NVML child; its log:\n{self.log()}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _send(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def collect(self) -> Cycle:
        reply = self._send("collect")
        return Cycle(reply["success"], [(n, lab, v) for n, lab, v in reply["series"]],
                     {(ns, pod): share for ns, pod, share in reply["pod_gpus"]})

    def inject(self, line: str) -> None:
        """Append a fault line for the fake library (read at its next call)."""
        with open(self.control, "a") as f:
            f.write(line + "\n")

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")

    def close(self) -> dict[str, Any] | None:
        reply = None
        if self.proc.poll() is None:
            with contextlib.suppress(AssertionError, BrokenPipeError):  # already gone: nothing to close
                reply = self._send("close")
        try:
            self.proc.wait(REPLY_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return reply


@pytest.fixture
def nvml_child(tmp_path: Path, fake_libs: FakeLibs) -> Iterator[Any]:
    """Factory: ``nvml_child(profile=..., socket=..., lib_dir=...)``; children closed at teardown."""
    children: list[NvmlChild] = []

    def start(*, profile: Path | None = H100X8, lib_dir: Path | None = None, **kwargs: Any) -> NvmlChild:
        child_dir = tmp_path / f"child{len(children)}"
        child_dir.mkdir()
        child = NvmlChild(child_dir, lib_dir=lib_dir or fake_libs.full, profile=profile, **kwargs)
        children.append(child)
        return child

    yield start
    for child in children:
        child.close()


@pytest.fixture
def kubelet() -> Iterator[FakeKubelet]:
    server = FakeKubelet()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)
