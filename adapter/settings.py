"""Typed adapter settings: one documented field per flag, in the Kubernetes apiserver's vocabulary.

Read through the one settings pattern (``exporter.contract.settings``): every flag
``--some-flag`` has the environment twin ``KVSCALE_ADAPTER_SOME_FLAG`` (the Helm chart
uses those) and the ``--config`` key ``some_flag``; precedence default < file < env < flag.
The policy (``--policy`` / ``KVSCALE_POLICY``) gives the quantile served when an HPA's
selector names none. ``--prometheus-authorization`` is a secret: never printed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from exporter.contract.policy import Policy
from exporter.contract.settings import Command, Secret, SettingsError, load, policy_field, setting

__all__ = ["COMMAND", "AdapterSettings", "SettingsError", "load_settings"]

_HEADERS = "(comma-separated)"


@dataclass(frozen=True)
class AdapterSettings:
    secure_port: int = setting(6443, "HTTPS port.", metavar="PORT")
    bind_address: str = setting("0.0.0.0", "Address to listen on.", metavar="ADDRESS")
    tls_cert_file: Path | None = setting(None, "Serving certificate (PEM), reloaded on change.", metavar="FILE")
    tls_private_key_file: Path | None = setting(None, "Key of --tls-cert-file.", metavar="FILE")
    client_ca_file: Path | None = setting(None, "CA for direct client certificates: CN is the user, O the groups.",
                                          metavar="FILE")
    requestheader_client_ca_file: Path | None = setting(
        None, "CA of the front-proxy (aggregator) client certificate. Without it, and in a cluster, read from "
              "kube-system/extension-apiserver-authentication.", metavar="FILE")
    requestheader_allowed_names: tuple[str, ...] = setting(
        (), f"CNs {_HEADERS} allowed as front proxy; empty allows any CN the CA signed.", metavar="NAMES")
    requestheader_username_headers: tuple[str, ...] = setting(
        ("X-Remote-User",), f"Headers {_HEADERS} the front proxy puts the user name in.", metavar="HEADERS")
    requestheader_group_headers: tuple[str, ...] = setting(
        ("X-Remote-Group",), f"Headers {_HEADERS} the front proxy puts the groups in, one header per group.",
        metavar="HEADERS")
    requestheader_extra_headers_prefix: tuple[str, ...] = setting(
        ("X-Remote-Extra-",), f"Header prefixes {_HEADERS} of the user's extra attributes.", metavar="PREFIXES")
    authorization_mode: Literal["auto", "none", "delegated"] = setting(
        "auto", "delegated: SubjectAccessReview to kube-apiserver (cached 10 s); none: any authenticated user "
                "(logged loudly at startup); auto: delegated when the adapter talks to a cluster, else none.")
    kube_api_timeout: float = setting(
        5.0, "Seconds before a Kubernetes API call (SubjectAccessReview, the front-proxy ConfigMap) counts as "
             "failed; a review that overruns is a 500, never an allow.", metavar="SECONDS")
    max_connections: int = setting(
        2048, "Connections held at once, counted from the TCP accept; one more displaces the connection idle "
              "longest, or is closed at once when every connection is busy.",
        metavar="COUNT")
    request_header_timeout: float = setting(
        10.0, "Seconds from the accept to the end of the first request's header, TLS handshake included "
              "(408 after).", metavar="SECONDS")
    keepalive_timeout: float = setting(60.0, "Seconds an idle kept-alive connection waits for its next request.",
                                       metavar="SECONDS")
    max_request_header_bytes: int = setting(65536, "Largest request header accepted (431 beyond).",
                                            metavar="BYTES")
    source: Literal["direct", "prometheus"] = setting(
        "direct", "direct: read the exporters; prometheus: PromQL against --prometheus-url.")
    exporter_url: tuple[str, ...] = setting(
        (), "Exporter base URL (repeatable; comma-separated in the environment). Without it, exporter pods are "
            "discovered through the Kubernetes API.", metavar="URL", repeat=True)
    exporter_namespace: str = setting("monitoring", "Namespace of the exporter DaemonSet (discovery).",
                                      metavar="NAMESPACE")
    exporter_selector: str = setting("app.kubernetes.io/name=kvscale-exporter",
                                     "Label selector of the exporter pods (discovery).", metavar="SELECTOR")
    exporter_port: int = setting(9400, "Port of the exporter pods' /metrics (discovery).", metavar="PORT")
    refresh_interval: float = setting(2.0, "direct: seconds between reads of the exporters.", metavar="SECONDS")
    max_age: float = setting(0.0, "A sample older than this is left out. 0: twice --refresh-interval (direct), "
                                  "60 s (prometheus).", metavar="SECONDS")
    window_seconds: int = setting(60, "Sliding window of the exporter's quantiles and rates (reported as "
                                      "windowSeconds).", metavar="SECONDS")
    prometheus_url: str | None = setting(None, "Prometheus base URL for --source prometheus (and KEDA triggers' "
                                               "activationQuery).", metavar="URL")
    prometheus_timeout: float = setting(5.0, "Seconds before a PromQL query counts as a source outage.",
                                        metavar="SECONDS")
    prometheus_authorization: Secret = setting(
        Secret(), "Authorization header value sent to Prometheus; a secret, never printed (prefer the env twin).",
        metavar="VALUE", secret=True)
    pods_file: Path | None = setting(None, "Outside a cluster: a v1 PodList (YAML or JSON, as kubectl get pods -A "
                                           "-o yaml prints) as pod inventory.", metavar="FILE")
    kubeconfig: str | None = setting(None, "Kubeconfig; default: in-cluster config.", metavar="FILE")
    enable_external_metrics: bool = setting(False, "Also serve external.metrics.k8s.io/v1beta1 (off: usually "
                                                   "KEDA owns it).")
    keda_port: int = setting(0, "Port of KEDA's external scaler (gRPC externalscaler.ExternalScaler, for "
                                "external and external-push triggers); 0: not served.", metavar="PORT")
    keda_client_ca_file: Path | None = setting(
        None, "CA that issued KEDA's client certificate (its TriggerAuthentication tlsClientCert); required with "
              "--keda-port. Reloaded on change.", metavar="FILE")
    keda_allowed_names: tuple[str, ...] = setting(
        (), f"Client certificate CNs {_HEADERS} allowed to call the KEDA scaler; required with --keda-port.",
        metavar="NAMES")
    keda_activation_source: tuple[str, ...] = setting(
        (), "NAME=URL of a /metrics (a router's or gateway's queue) KEDA triggers read demand from at zero "
            "replicas (repeatable; comma-separated in the environment).", metavar="NAME=URL", repeat=True)
    insecure_http: bool = setting(False, "LOCAL DEMOS ONLY: plain HTTP, no authentication (the KEDA scaler too).")
    cert_reload_interval: float = setting(5.0, "Seconds between checks of the certificate and CA files (or the "
                                               "cluster's ConfigMap) for changes.", metavar="SECONDS")
    log_level: Literal["debug", "info", "warning", "error"] = setting("info", "Log verbosity.")
    policy: Policy = policy_field()

    def __post_init__(self) -> None:
        if self.max_age == 0:  # 0 means "derived from the source"
            object.__setattr__(self, "max_age", 2 * self.refresh_interval if self.source == "direct" else 60.0)
        self.validate()

    @property
    def exporter_urls(self) -> tuple[str, ...]:
        return self.exporter_url

    @property
    def default_quantile(self) -> str:
        """The quantile label value served when the metric selector names none, spelled as the exporter does."""
        return repr(float(self.policy.adapter_default_quantile))

    @property
    def needs_kubernetes(self) -> bool:
        """Whether any part must talk to the Kubernetes API."""
        discover = self.source == "direct" and not self.exporter_urls
        rh_from_cluster = not self.insecure_http and self.requestheader_client_ca_file is None \
            and self.client_ca_file is None
        return self.pods_file is None or discover or rh_from_cluster or self.authorization_mode == "delegated"

    def validate(self) -> None:
        if self.source == "prometheus" and not self.prometheus_url:
            raise SettingsError("--source prometheus needs --prometheus-url", field="prometheus_url")
        if not self.insecure_http and (self.tls_cert_file is None or self.tls_private_key_file is None):
            raise SettingsError("TLS is required: give --tls-cert-file and --tls-private-key-file "
                                "(or --insecure-http for a local demo)")
        if self.refresh_interval <= 0 or self.max_age <= 0:
            raise SettingsError("--refresh-interval and --max-age must be positive", field="refresh_interval")
        self._validate_keda()
        for name in ("secure_port", "exporter_port", "keda_port"):
            if not 0 <= getattr(self, name) < 65536:
                raise SettingsError(f"--{name.replace('_', '-')} {getattr(self, name)} is not a port", field=name)
        if self.prometheus_timeout <= 0 or self.cert_reload_interval <= 0 or self.window_seconds <= 0:
            raise SettingsError("--prometheus-timeout, --cert-reload-interval and --window-seconds must be positive")
        for name in ("kube_api_timeout", "max_connections", "request_header_timeout", "keepalive_timeout",
                     "max_request_header_bytes"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"--{name.replace('_', '-')} must be positive", field=name)

    @property
    def keda_activation_sources(self) -> dict[str, str]:
        """--keda-activation-source entries as name -> URL (validated)."""
        return dict(entry.split("=", 1) for entry in self.keda_activation_source)

    def _validate_keda(self) -> None:
        if self.keda_port and not self.insecure_http and (self.keda_client_ca_file is None
                                                          or not self.keda_allowed_names):
            raise SettingsError("--keda-port needs --keda-client-ca-file and --keda-allowed-names (the CNs of "
                                "KEDA's client certificates)", field="keda_port")
        names: set[str] = set()
        for entry in self.keda_activation_source:
            name, sep, url = entry.partition("=")
            if not sep or not name or not url.startswith(("http://", "https://")):
                raise SettingsError(f"--keda-activation-source {entry!r} is not NAME=http(s)://...",
                                    field="keda_activation_source")
            if name in names or name == "prometheus":
                raise SettingsError(f"--keda-activation-source name {name!r} is reserved or given twice",
                                    field="keda_activation_source")
            names.add(name)


COMMAND = Command(
    prog="kvscale-adapter", env_prefix="KVSCALE_ADAPTER_", settings=AdapterSettings,
    description="Custom metrics adapter: serves kvscale's per-pod signals as custom.metrics.k8s.io to the HPA "
                "(flags in the Kubernetes apiserver's vocabulary).")


def load_settings(argv: Sequence[str] | None, environ: Mapping[str, str]) -> AdapterSettings:
    """Settings from argv, environment and files; SettingsError if invalid."""
    return load(COMMAND, argv, environ)
