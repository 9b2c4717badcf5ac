"""``build_collector``: the --nvml modes, with the library absent, the driver absent, or present."""

from __future__ import annotations

from typing import Any

from exporter.gpu import build_collector
from tests.exporter.gpu.fakenvml import FakeLibs


def test_off_builds_nothing_and_touches_no_library() -> None:
    assert build_collector(mode="off", node_name="n", pod_resources_socket=None) is None


def test_auto_without_the_library_runs_vllm_only(nvml_child: Any, fake_libs: FakeLibs) -> None:
    child = nvml_child(mode="auto", lib_dir=fake_libs.empty)
    assert child.hello == {"collector": None}
    assert "INFO exporter.gpu NVML is not available on this node (nvmlInit failed: NVML Shared Library Not Found)" \
        ": running vLLM-only" in child.log()


def test_on_without_the_library_is_a_setup_error(nvml_child: Any, fake_libs: FakeLibs) -> None:
    child = nvml_child(mode="on", lib_dir=fake_libs.empty)
    assert child.hello == {"setup_error": "--nvml on, but NVML is unavailable: nvmlInit failed: "
                                          "NVML Shared Library Not Found"}


def test_library_without_a_driver(nvml_child: Any) -> None:
    # libnvidia-ml is mounted but no driver is loaded (profile unset): same as absent.
    assert nvml_child(mode="auto", profile=None).hello == {"collector": None}
    assert nvml_child(mode="on", profile=None).hello == {
        "setup_error": "--nvml on, but NVML is unavailable: nvmlInit failed: Driver Not Loaded"}


def test_auto_with_the_library_builds_the_collector(nvml_child: Any) -> None:
    child = nvml_child(mode="auto")
    assert child.hello == {"collector": "nvml"}
    assert "NVML ready: 8 GPUs; pod attribution off" in child.log()


def test_library_path_loads_nvml_from_outside_the_loader_path(nvml_child: Any, fake_libs: FakeLibs) -> None:
    # e.g. a driver mounted at /usr/local/nvidia/lib64 that is not on LD_LIBRARY_PATH
    child = nvml_child(lib_dir=fake_libs.empty, library_path=str(fake_libs.full / "libnvidia-ml.so.1"))
    assert child.hello == {"collector": "nvml"}
    assert child.collect().by_gpu("kvscale_gpu_up") == {str(i): 1.0 for i in range(8)}


def test_unloadable_library_path_is_a_clear_setup_error(nvml_child: Any, fake_libs: FakeLibs) -> None:
    missing = str(fake_libs.empty / "libnvidia-ml.so.1")
    reply = nvml_child(lib_dir=fake_libs.empty, library_path=missing).hello
    assert reply["setup_error"].startswith(f"--nvml on, but NVML is unavailable: cannot load NVML from {missing}")
