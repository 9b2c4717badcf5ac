"""Settings: precedence, strict validation, and failing before the port is bound."""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from exporter.cli import load_settings, parser
from exporter.settings import FIELDS, SettingsError, build
from tests.conftest import PYTHON, REPO


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("interval: 3\nwindow: 90\nscrape_timeout: 1\nthresholds: {queue_target: 7}\n")  # older key
    env = {"KVSCALE_WINDOW": "120", "KVSCALE_SCRAPE_TIMEOUT": "0.5", "NODE_NAME": "gpu-node-1"}
    s = load_settings(["--config", str(config), "--scrape-timeout", "0.25"], env)
    assert (s.interval, s.window, s.scrape_timeout) == (3.0, 120.0, 0.25)
    assert s.node_name == "gpu-node-1"
    assert s.policy.queue_target == 7
    assert s.listen == "0.0.0.0:9400"


def test_repeatable_flags_and_list_envs() -> None:
    s = load_settings(["--vllm-target", "a/b=http://h:1", "--vllm-target", "http://h:2",
                       "--quantiles", "0.5", "--quantiles", "0.99"], {})
    assert s.vllm_target == ["a/b=http://h:1", "http://h:2"]
    assert s.quantiles == [0.5, 0.99]
    assert load_settings([], {"KVSCALE_QUANTILES": "0.9, 0.95"}).quantiles == [0.9, 0.95]


@pytest.mark.parametrize(("layer", "message"), [
    ({"intervall": 5}, "unknown setting 'intervall' in config file c.yaml (did you mean 'interval'?)"),
    ({"interval": "fast"}, "interval .*invalid value"),
    ({"interval": -1}, "interval: must be a positive number"),
    ({"interval": 2, "scrape_timeout": 2}, "must be below interval"),
    ({"interval": 30, "window": 40}, "at least two intervals"),
    ({"listen": "9400"}, "not HOST:PORT"),
    ({"nvml": "maybe"}, "nvml: 'maybe' is not one of"),
    ({"quantiles": [0.5, 1.5]}, "quantiles"),
    ({"gpu_price_per_hour": -2}, "gpu_price_per_hour"),
    ({"pod_port": 70000}, "pod_port"),
    ({"max_body_bytes": 10}, "max_body_bytes"),
    ({"thresholds": {"kv_target": 2}}, "config file c.yaml, key thresholds: kv_target: must be <= 1, got 2"),
    ({"policy": {"kv_targte": 0.5}}, "config file c.yaml, key policy: unknown key 'kv_targte'"),
    ({"policy": [1, 2]}, "expected a mapping"),
    ({"pod_port": True}, "pod_port"),
])
def test_invalid_settings_are_refused_with_the_field_named(tmp_path: Path, layer: dict[str, object],
                                                          message: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(layer))
    with pytest.raises(SettingsError) as caught:
        load_settings(["--config", str(config)], {})
    assert message.replace("c.yaml", str(config)) in str(caught.value) or \
        re.search(message, str(caught.value)), str(caught.value)


def test_in_process_build_validates_like_the_command_line() -> None:
    with pytest.raises(SettingsError, match=r"interval \(test\): invalid value 'fast'"):
        build([("test", {"interval": "fast"})])
    with pytest.raises(SettingsError, match="unknown setting 'intervall'"):
        build([("test", {"intervall": 1})])
    assert build([("test", {"policy": {"queue_target": 3}})]).policy.queue_target == 3


def test_every_setting_has_a_flag_and_documentation() -> None:
    help_text = parser().format_help()
    for name, f in FIELDS.items():
        assert f.metadata["doc"]
        assert "--" + name.replace("_", "-") in help_text
        assert "KVSCALE_" + name.upper() in help_text
    for flag in ("--config", "--policy", "KVSCALE_POLICY", "--thresholds-file"):
        assert flag in help_text


def run_exporter(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "exporter", *args], check=False, cwd=REPO, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def test_bad_config_file_stops_before_binding(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("listen: 127.0.0.1:0\nwindw: 60\n")
    result = run_exporter("--config", str(config))
    assert result.returncode == 2
    assert "unknown setting 'windw' in config file" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_target_and_busy_port_are_clear_errors() -> None:
    assert "NAMESPACE/POD" in run_exporter("--vllm-target", "x=http://h:1", "--nvml", "off").stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_exporter("--listen", f"127.0.0.1:{port}", "--nvml", "off", "--kubernetes", "off")
    assert result.returncode == 2
    assert "cannot listen on" in result.stderr


def test_discovery_without_a_node_name_is_refused() -> None:
    result = run_exporter("--kubernetes", "on", "--nvml", "off", "--listen", "127.0.0.1:0")
    assert result.returncode == 2
    assert "--node-name" in result.stderr


def test_sigterm_stops_the_exporter_cleanly() -> None:
    import signal
    import time
    import urllib.request

    from tests.conftest import free_port

    port = free_port()
    proc = subprocess.Popen([PYTHON, "-m", "exporter", "--listen", f"127.0.0.1:{port}", "--nvml", "off",
                             "--kubernetes", "off", "--interval", "1", "--scrape-timeout", "0.5"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as resp:
                assert resp.status == 200
                break
        except OSError:
            assert time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0


@pytest.mark.parametrize(("text", "message"), [
    (b"nvml: off\n", "nvml .*: YAML reads an unquoted on/off/yes/no as false: quote it"),
    (b"kubernetes: on\n", "kubernetes .*: YAML reads an unquoted on/off/yes/no as true: quote it"),
    (b"listen: \xff\xfe\n", "not UTF-8"),
    (b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
    (b"listen: [unclosed\n", "cannot read: while parsing"),
])
def test_unreadable_or_ambiguous_yaml_is_a_clear_error(tmp_path: Path, text: bytes, message: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_bytes(text)
    with pytest.raises(SettingsError, match=message):
        load_settings(["--config", str(config)], {})
    policy = tmp_path / "p.yaml"
    policy.write_bytes(text.replace(b"nvml", b"kv_target").replace(b"kubernetes", b"kv_target"))
    with pytest.raises(SettingsError):
        load_settings(["--policy", str(policy)], {})


def test_a_misspelled_kvscale_variable_is_refused() -> None:
    with pytest.raises(SettingsError, match="KVSCALE_INTERVALL is not a kvscale-exporter setting"):
        load_settings([], {"KVSCALE_INTERVALL": "2"})


@pytest.mark.parametrize("args", [("--vllm-target", "http://[::1/metrics"), ("--vllm-target", "http://h:70000"),
                                  ("--vllm-target", "a/b=http://h:1", "--vllm-target", "a/b=http://h:2")])
def test_target_mistakes_stop_the_exporter_before_binding(args: tuple[str, ...]) -> None:
    result = run_exporter(*args, "--nvml", "off", "--listen", "127.0.0.1:0")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "--vllm-target" in result.stderr
