"""The one settings pattern, through both long-running commands that use it."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

import pytest

from adapter.settings import COMMAND as ADAPTER
from adapter.settings import AdapterSettings
from exporter.contract.settings import Command, Secret, SettingsError, convert, load, parser
from exporter.settings import COMMAND as EXPORTER
from tests.conftest import PYTHON, REPO

SECRET = "Bearer s3cr3t-t0ken-value"
# Flags every adapter run below needs (no TLS files, no cluster).
ADAPTER_BASE = ["--insecure-http", "--exporter-url", "http://127.0.0.1:9", "--pods-file", "pods.yaml"]


@pytest.mark.parametrize(("command", "name", "values", "base"), [
    (EXPORTER, "window", ("90", "120", "150"), []),
    (ADAPTER, "refresh_interval", ("3", "4", "5"), ADAPTER_BASE),
    (ADAPTER, "exporter_namespace", ("from-file", "from-env", "from-flag"), ADAPTER_BASE),
])
def test_precedence_default_file_env_flag(tmp_path: Path, command: Command[Any], name: str,
                                          values: tuple[str, str, str], base: list[str]) -> None:
    file_value, env_value, flag_value = values
    config = tmp_path / "c.yaml"
    config.write_text(f"{name}: {file_value}\n")
    env = command.env_name(name)
    flag = "--" + name.replace("_", "-")
    default = getattr(load(command, base, {}), name)
    kind = type(default)
    layers = [([], {}, default),
              (["--config", str(config)], {}, convert(kind, file_value)),
              (["--config", str(config)], {env: env_value}, convert(kind, env_value)),
              (["--config", str(config), flag, flag_value], {env: env_value}, convert(kind, flag_value))]
    assert len({want for _, _, want in layers}) == 4
    for argv, environ, want in layers:
        assert getattr(load(command, [*base, *argv], environ), name) == want, (argv, environ)
    # the config file may also be named by the environment
    assert getattr(load(command, base, {command.env_prefix + "CONFIG": str(config)}), name) == \
        convert(kind, file_value)


@pytest.mark.parametrize(("hint", "raw", "want"), [
    (int, "8443", 8443), (int, 300.0, 300), (float, "0.5", 0.5), (bool, "true", True), (bool, "0", False),
    (bool, False, False), (str, 8000, "8000"), (Path | None, "", None), (Path | None, "/x", Path("/x")),
    (tuple[str, ...], "a, b ,,c", ("a", "b", "c")), (list[float], ["0.5", 0.9], [0.5, 0.9]),
    (Secret, "x", Secret("x")),
])
def test_convert(hint: Any, raw: Any, want: Any) -> None:
    assert convert(hint, raw) == want


@pytest.mark.parametrize(("hint", "raw"), [(int, "1.5"), (int, True), (float, "fast"), (float, "nan"),
                                           (bool, "maybe"), (str, True), (str, {"a": 1}), (int, None)])
def test_convert_refuses(hint: Any, raw: Any) -> None:
    with pytest.raises(ValueError):
        convert(hint, raw)


def run(package: str, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", package, *argv], cwd=REPO, check=False, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin", **(env or {})})


@pytest.mark.parametrize(("package", "env", "named"), [
    ("exporter", {"KVSCALE_INTERVAL": "fast"}, "interval (environment variable KVSCALE_INTERVAL): invalid value"),
    ("exporter", {"KVSCALE_POD_PORT": "70000"}, "pod_port: 70000 is not a port (from environment variable "
                                                "KVSCALE_POD_PORT)"),
    ("adapter", {"KVSCALE_ADAPTER_SECURE_PORT": "https"},
     "secure_port (environment variable KVSCALE_ADAPTER_SECURE_PORT): invalid value"),
    ("adapter", {"KVSCALE_ADAPTER_INSECURE_HTTP": "maybe"}, "insecure_http (environment variable"),
    ("adapter", {"KVSCALE_ADAPTER_SOURCE": "graphite"}, "source (environment variable KVSCALE_ADAPTER_SOURCE): "
                                                        "invalid value 'graphite': not one of direct, prometheus"),
    ("exporter", {"KVSCALE_INTERVALL": "2"}, "environment variable KVSCALE_INTERVALL is not a kvscale-exporter "
                                             "setting (did you mean KVSCALE_INTERVAL?)"),
    ("adapter", {"KVSCALE_ADAPTER_SECURE_PROT": "1"}, "environment variable KVSCALE_ADAPTER_SECURE_PROT is not a "
                                                      "kvscale-adapter setting (did you mean "
                                                      "KVSCALE_ADAPTER_SECURE_PORT?)"),
])
def test_bad_environment_is_a_clear_error_and_exit_2(package: str, env: dict[str, str], named: str) -> None:
    result = run(package, env=env)
    assert result.returncode == 2, result.stderr
    assert f"kvscale-{package}: error: " in result.stderr and named in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_other_commands_names_are_not_misspellings() -> None:
    # The exporter's prefix is a prefix of the adapter's; the test suite's switches share it too.
    environ = {"KVSCALE_ADAPTER_SOURCE": "prometheus", "KVSCALE_TEST": "1", "KVSCALE_POLICY": "",
               "KVSCALE_ALERTS_THRESHOLDS": "x", "NODE_NAME": "n1", "KVSCALE_WINDOW": "30"}
    assert load(EXPORTER, [], environ).node_name == "n1"
    # Kubernetes' service links for Services named kvscale-exporter / kvscale-adapter are not settings either
    links = {"KVSCALE_EXPORTER_SERVICE_HOST": "10.0.0.2", "KVSCALE_EXPORTER_PORT": "tcp://10.0.0.2:9400",
             "KVSCALE_EXPORTER_PORT_9400_TCP_ADDR": "10.0.0.2", "KVSCALE_ADAPTER_SERVICE_PORT_HTTPS": "443",
             "KVSCALE_ADAPTER_PORT": "tcp://10.0.0.3:443", "KVSCALE_ADAPTER_PORT_443_TCP_PROTO": "tcp"}
    assert load(EXPORTER, [], links).window == 60.0
    assert load(ADAPTER, ADAPTER_BASE, links).secure_port == 6443
    assert load(ADAPTER, ADAPTER_BASE, {"KVSCALE_INTERVAL": "9", "KVSCALE_ADAPTER_MAX_AGE": "7"}).max_age == 7


def test_secret_never_printed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    env = {"KVSCALE_ADAPTER_PROMETHEUS_AUTHORIZATION": SECRET}
    help_text = run("adapter", "--help", env=env).stdout
    assert "--prometheus-authorization" in help_text and SECRET not in help_text
    assert "KVSCALE_ADAPTER_PROMETHEUS_AUTHORIZATION" in help_text
    # an error elsewhere, and a startup failure, with the secret set: not in either message
    for argv in (["--source", "prometheus", "--insecure-http"],
                 ["--tls-cert-file", str(tmp_path / "none.pem"), "--tls-private-key-file", str(tmp_path / "k"),
                  "--exporter-url", "http://127.0.0.1:9", "--pods-file", str(tmp_path / "none.yaml"),
                  "--secure-port", "0", "--bind-address", "127.0.0.1", "--log-level", "debug"]):
        result = run("adapter", *argv, env=env)
        assert result.returncode == 2 and result.stderr, result.stderr
        assert SECRET not in result.stderr + result.stdout
    settings: AdapterSettings = load(ADAPTER, ADAPTER_BASE, env)
    assert settings.prometheus_authorization.reveal() == SECRET
    with caplog.at_level(logging.INFO):
        logging.getLogger("kvscale.test").info("settings %s / %r", settings, settings)
    assert SECRET not in repr(settings) + str(settings) + caplog.text
    assert "Secret('***')" in repr(settings)


def test_help_documents_every_field_its_twin_and_default() -> None:
    for command in (EXPORTER, ADAPTER):
        text = " ".join(parser(command).format_help().split())
        for name, f in command.fields().items():
            assert "--" + name.replace("_", "-") in text and command.env_name(name) in text
            assert f.metadata["doc"].split()[0] in text
        assert "--policy" in text and "KVSCALE_POLICY" in text and "--config" in text
    assert "(default: 6443; env: KVSCALE_ADAPTER_SECURE_PORT)" in " ".join(parser(ADAPTER).format_help().split())


def test_validation_names_the_field_and_its_origin(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("interval: 2\nscrape_timeout: 3\n")
    with pytest.raises(SettingsError) as caught:
        load(EXPORTER, ["--config", str(config)], {})
    assert str(caught.value) == (f"scrape_timeout (3.0s) must be below interval (2.0s) "
                                 f"(from config file {config})")
    with pytest.raises(SettingsError, match=r"--secure-port 70000 is not a port \(from flag --secure-port\)"):
        load(ADAPTER, [*ADAPTER_BASE, "--secure-port", "70000"], {})


def test_policy_reaches_both_commands_with_deprecated_spelling(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("queue_target: 11\nadapter_default_quantile: 0.99\n")
    assert load(EXPORTER, ["--policy", str(policy)], {}).policy.queue_target == 11
    assert load(EXPORTER, [], {"KVSCALE_POLICY": str(policy)}).policy.queue_target == 11
    assert capsys.readouterr().err == ""
    assert load(EXPORTER, ["--thresholds-file", str(policy)], {}).policy.queue_target == 11
    assert load(EXPORTER, [], {"KVSCALE_THRESHOLDS_FILE": str(policy)}).policy.queue_target == 11
    assert capsys.readouterr().err.count("is deprecated") == 2
    assert load(ADAPTER, [*ADAPTER_BASE, "--policy", str(policy)], {}).default_quantile == "0.99"
