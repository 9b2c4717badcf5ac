"""Typed adapter settings, validated once from the parsed command line."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal


class SettingsError(ValueError):
    """Flags that cannot work together; the message says which and why."""


def _split(raw: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in raw.split(",") if v.strip())


@dataclass(frozen=True)
class AdapterSettings:
    bind_address: str
    secure_port: int
    source: Literal["direct", "prometheus"]
    insecure_http: bool = False
    tls_cert_file: Path | None = None
    tls_private_key_file: Path | None = None
    client_ca_file: Path | None = None
    requestheader_client_ca_file: Path | None = None
    requestheader_allowed_names: tuple[str, ...] = ()
    requestheader_username_headers: tuple[str, ...] = ("X-Remote-User",)
    requestheader_group_headers: tuple[str, ...] = ("X-Remote-Group",)
    requestheader_extra_headers_prefix: tuple[str, ...] = ("X-Remote-Extra-",)
    authorization_mode: Literal["none", "delegated"] = "none"
    exporter_urls: tuple[str, ...] = ()
    exporter_namespace: str = "monitoring"
    exporter_selector: str = "app.kubernetes.io/name=kvscale-exporter"
    exporter_port: int = 9400
    refresh_interval: float = 2.0
    max_age: float = 4.0
    window_seconds: int = 60
    prometheus_url: str | None = None
    prometheus_timeout: float = 5.0
    prometheus_authorization: str = ""
    pods_file: Path | None = None
    kubeconfig: str | None = None
    enable_external_metrics: bool = False
    cert_reload_interval: float = 5.0

    @property
    def needs_kubernetes(self) -> bool:
        """Whether any part must talk to the Kubernetes API."""
        discover = self.source == "direct" and not self.exporter_urls
        rh_from_cluster = not self.insecure_http and self.requestheader_client_ca_file is None \
            and self.client_ca_file is None
        return self.pods_file is None or discover or rh_from_cluster or self.authorization_mode == "delegated"

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> AdapterSettings:
        source = args["source"]
        max_age = float(args["max_age"]) or (2 * float(args["refresh_interval"]) if source == "direct" else 60.0)
        settings = cls(
            bind_address=args["bind_address"], secure_port=int(args["secure_port"]), source=source,
            insecure_http=bool(args["insecure_http"]), tls_cert_file=args["tls_cert_file"],
            tls_private_key_file=args["tls_private_key_file"], client_ca_file=args["client_ca_file"],
            requestheader_client_ca_file=args["requestheader_client_ca_file"],
            requestheader_allowed_names=_split(args["requestheader_allowed_names"]),
            requestheader_username_headers=_split(args["requestheader_username_headers"]),
            requestheader_group_headers=_split(args["requestheader_group_headers"]),
            requestheader_extra_headers_prefix=_split(args["requestheader_extra_headers_prefix"]),
            authorization_mode=args["authorization_mode"], exporter_urls=tuple(args["exporter_url"] or ()),
            exporter_namespace=args["exporter_namespace"], exporter_selector=args["exporter_selector"],
            exporter_port=int(args["exporter_port"]), refresh_interval=float(args["refresh_interval"]),
            max_age=max_age, window_seconds=int(args["window_seconds"]), prometheus_url=args["prometheus_url"],
            prometheus_timeout=float(args["prometheus_timeout"]),
            prometheus_authorization=args["prometheus_authorization"], pods_file=args["pods_file"],
            kubeconfig=args["kubeconfig"], enable_external_metrics=bool(args["enable_external_metrics"]),
            cert_reload_interval=float(args["cert_reload_interval"]))
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.source == "prometheus" and not self.prometheus_url:
            raise SettingsError("--source prometheus needs --prometheus-url")
        if not self.insecure_http and (self.tls_cert_file is None or self.tls_private_key_file is None):
            raise SettingsError("TLS is required: give --tls-cert-file and --tls-private-key-file "
                                "(or --insecure-http for a local demo)")
        if self.refresh_interval <= 0 or self.max_age <= 0:
            raise SettingsError("--refresh-interval and --max-age must be positive")
        if not 0 <= self.secure_port < 65536:
            raise SettingsError(f"--secure-port {self.secure_port} is not a port")
