"""Static target flags and the projection of a pod to a target."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.vllm.targets import Target, TargetError, parse_static, pod_gpus, target_from_pod


@pytest.mark.parametrize(("spec", "want"), [
    ("http://10.0.0.5:8000/metrics", Target("", "10.0.0.5:8000", "http://10.0.0.5:8000/metrics")),
    ("http://10.0.0.5:8000", Target("", "10.0.0.5:8000", "http://10.0.0.5:8000/metrics")),
    ("demo/vllm-0=http://h:8000/", Target("demo", "vllm-0", "http://h:8000/metrics")),
    ("demo/vllm-0=https://h:8443/custom", Target("demo", "vllm-0", "https://h:8443/custom")),
    ("http://h:8000/metrics?x=a=b", Target("", "h:8000", "http://h:8000/metrics?x=a=b")),
])
def test_parse_static(spec: str, want: Target) -> None:
    assert parse_static(spec) == want


@pytest.mark.parametrize("spec", ["h:8000", "ftp://h/", "vllm-0=http://h:8000", "demo/=http://h:1", "=http://h"])
def test_parse_static_rejects(spec: str) -> None:
    with pytest.raises(TargetError):
        parse_static(spec)


def pod(phase: str = "Running", ip: str | None = "10.1.2.3", annotations: dict[str, str] | None = None,
        resources: dict[str, Any] | None = None, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "vllm-0", "namespace": "llm", "annotations": annotations or {}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": phase, "podIP": ip},
            "spec": {"containers": [{"name": "vllm", "resources": resources or {}}]}}


@pytest.mark.parametrize(("p", "url"), [
    (pod(), "http://10.1.2.3:8000/metrics"),
    (pod(annotations={"kvscale.io/port": "9000", "kvscale.io/path": "stats"}), "http://10.1.2.3:9000/stats"),
    (pod(annotations={"kvscale.io/scheme": "https"}), "https://10.1.2.3:8000/metrics"),
    (pod(annotations={"kvscale.io/port": "nope", "kvscale.io/scheme": "gopher"}), "http://10.1.2.3:8000/metrics"),
    (pod(ip="fd00::5"), "http://[fd00::5]:8000/metrics"),
    (pod(phase="Pending"), None),
    (pod(ip=None), None),
    (pod(deleting=True), None),
])
def test_target_from_pod(p: dict[str, Any], url: str | None) -> None:
    target = target_from_pod(p, default_port=8000, default_path="/metrics")
    assert (target.url if target else None) == url
    if target:
        assert target.key == ("llm", "vllm-0")


@pytest.mark.parametrize(("resources", "want"), [
    ({"limits": {"nvidia.com/gpu": "2"}}, 2.0),
    ({"requests": {"nvidia.com/gpu": 1}}, 1.0),
    ({"limits": {"nvidia.com/gpu": "4"}, "requests": {"nvidia.com/gpu": "1"}}, 4.0),
    ({"limits": {"cpu": "4"}}, None),
    ({"limits": {"nvidia.com/gpu": "lots"}}, None),
    ({}, None),
])
def test_pod_gpus_from_the_spec(resources: dict[str, Any], want: float | None) -> None:
    assert pod_gpus(pod(resources=resources)) == want


@pytest.mark.parametrize(("spec", "message"), [
    ("http://[::1/metrics", "not a URL"),  # urlsplit's ValueError was a traceback
    ("http://h:99999/metrics", "port"),
    ("http://h:0/metrics", "port"),
    ("http://h:8x/metrics", "port"),
    ("ns/p=http://h:65536", "port"),
])
def test_malformed_urls_and_ports_are_clear_target_errors(spec: str, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        parse_static(spec)


@pytest.mark.parametrize("spec", ["http://user:s3cret@h:8000/metrics", "http://:s3cret@h:8000"])
def test_a_password_in_the_url_stays_out_of_the_pod_label_and_repr(spec: str) -> None:
    target = parse_static(spec)
    assert target.pod == "h:8000"
    assert "s3cret" not in repr(target)
    assert "s3cret" in target.url  # still used to authenticate the scrape


def test_a_namespace_and_pod_given_twice_is_refused() -> None:
    from exporter.app import SetupError, target_source
    from exporter.settings import build

    settings = build([("test", {"vllm_target": ["ns/p=http://a:1", "ns/p=http://b:2"]})])
    with pytest.raises(SetupError, match="ns/p is given twice"):
        target_source(settings, {})
    settings = build([("test", {"vllm_target": ["http://a:1", "http://a:1/metrics"]})])
    with pytest.raises(SetupError, match="a:1 is given twice"):
        target_source(settings, {})
