from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from adapter.cli import parser
from adapter.settings import AdapterSettings, SettingsError, load_settings
from tests.conftest import PYTHON, REPO


def settings(*argv: str, env: dict[str, str] | None = None) -> AdapterSettings:
    return load_settings(list(argv), env or {})


@pytest.mark.parametrize(("argv", "needle"), [
    (["--insecure-http", "--source", "prometheus"], "--prometheus-url"),
    (["--exporter-url", "http://x"], "TLS is required"),
    (["--insecure-http", "--refresh-interval", "0"], "positive"),
])
def test_invalid_combinations(argv: list[str], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        settings(*argv)


def test_max_age_defaults_per_source() -> None:
    assert settings("--insecure-http", "--refresh-interval", "1.5").max_age == 3.0
    assert settings("--insecure-http", "--source", "prometheus", "--prometheus-url", "http://p").max_age == 60.0


def test_flags_have_env_twins() -> None:
    s = settings(env={"KVSCALE_ADAPTER_EXPORTER_URL": "http://a:1,http://b:2",
                      "KVSCALE_ADAPTER_REQUESTHEADER_ALLOWED_NAMES": "front-proxy-client, Aggregator Proxy",
                      "KVSCALE_ADAPTER_INSECURE_HTTP": "true", "KVSCALE_ADAPTER_SECURE_PORT": "7443"})
    assert s.exporter_urls == ("http://a:1", "http://b:2")
    assert s.requestheader_allowed_names == ("front-proxy-client", "Aggregator Proxy")
    assert s.insecure_http and s.secure_port == 7443
    # the flag wins over its twin
    assert settings("--secure-port", "8443", env={"KVSCALE_ADAPTER_SECURE_PORT": "7443",
                                                  "KVSCALE_ADAPTER_INSECURE_HTTP": "1"}).secure_port == 8443


def test_needs_kubernetes_only_when_something_comes_from_the_cluster(tmp_path: Path) -> None:
    offline = settings("--insecure-http", "--exporter-url", "http://x", "--pods-file", str(tmp_path / "p.yaml"))
    assert not offline.needs_kubernetes
    assert settings("--insecure-http", "--pods-file", "p").needs_kubernetes  # exporter discovery


def test_bad_flags_exit_2_with_a_message() -> None:
    proc = subprocess.run([PYTHON, "-m", "adapter", "--source", "prometheus", "--insecure-http"], cwd=REPO, check=False,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--prometheus-url" in proc.stderr


def test_help_names_the_apiserver_flags() -> None:
    text = parser().format_help()
    for flag in ("--secure-port", "--bind-address", "--tls-cert-file", "--tls-private-key-file",
                 "--requestheader-client-ca-file", "--requestheader-allowed-names", "--authorization-mode",
                 "--source", "--exporter-url", "--prometheus-url", "--pods-file"):
        assert flag in text


@pytest.mark.parametrize("missing", ["--client-ca-file", "--pods-file"])
def test_missing_files_exit_2_naming_them(tmp_path: Path, missing: str) -> None:
    import trustme

    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "s.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    (tmp_path / "pods.yaml").write_text("kind: List\nitems: []\n")
    files = {"--client-ca-file": str(tmp_path / "ca.pem"), "--pods-file": str(tmp_path / "pods.yaml")}
    files[missing] = str(tmp_path / "absent")
    argv = ["--tls-cert-file", str(tmp_path / "s.pem"), "--tls-private-key-file", str(tmp_path / "s.pem"),
            "--exporter-url", "http://127.0.0.1:9", "--bind-address", "127.0.0.1", "--secure-port", "0"]
    for flag, path in files.items():
        argv += [flag, path]
    proc = subprocess.run([PYTHON, "-m", "adapter", *argv], cwd=REPO, check=False, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "cannot start" in proc.stderr and "absent" in proc.stderr
    assert "Traceback" not in proc.stderr
