"""``kvscale-adapter``: flags in the Kubernetes apiserver's vocabulary, each with an env twin.

Every flag ``--some-flag`` can also be set as ``KVSCALE_ADAPTER_SOME_FLAG`` (the
Helm chart uses those); a flag on the command line wins.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from adapter.settings import AdapterSettings, SettingsError

ENV_PREFIX = "KVSCALE_ADAPTER_"


def _env(flag: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + flag.upper().replace("-", "_"), default)


def _list_env(flag: str) -> list[str]:
    raw = _env(flag)
    return [v for v in (raw or "").split(",") if v]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kvscale-adapter", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("--secure-port", type=int, default=int(_env("secure-port", "6443") or 6443), help="HTTPS port.")
    a("--bind-address", default=_env("bind-address", "0.0.0.0"), help="Address to listen on.")
    a("--tls-cert-file", type=Path, default=_env("tls-cert-file"),
      help="Serving certificate (PEM), reloaded on change.")
    a("--tls-private-key-file", type=Path, default=_env("tls-private-key-file"), help="Key of --tls-cert-file.")
    a("--client-ca-file", type=Path, default=_env("client-ca-file"),
      help="CA for direct client certificates: CN is the user, O the groups.")
    a("--requestheader-client-ca-file", type=Path, default=_env("requestheader-client-ca-file"),
      help="CA of the front-proxy (aggregator) client certificate. Without it, and in a cluster, read from "
           "kube-system/extension-apiserver-authentication.")
    a("--requestheader-allowed-names", default=_env("requestheader-allowed-names", ""),
      help="Comma-separated CNs allowed as front proxy; empty allows any CN the CA signed.")
    a("--requestheader-username-headers", default=_env("requestheader-username-headers", "X-Remote-User"),
      help="Headers (comma-separated) the front proxy puts the user name in.")
    a("--requestheader-group-headers", default=_env("requestheader-group-headers", "X-Remote-Group"),
      help="Headers (comma-separated) the front proxy puts the groups in, one header per group.")
    a("--requestheader-extra-headers-prefix", default=_env("requestheader-extra-headers-prefix", "X-Remote-Extra-"),
      help="Header prefixes (comma-separated) of the user's extra attributes.")
    a("--authorization-mode", choices=("none", "delegated"), default=_env("authorization-mode", "none"),
      help="delegated: SubjectAccessReview to kube-apiserver (cached 10 s); none: any authenticated user.")
    a("--source", choices=("direct", "prometheus"), default=_env("source", "direct"),
      help="direct: read the exporters; prometheus: PromQL against --prometheus-url.")
    a("--exporter-url", action="append", default=_list_env("exporter-url"),
      help="Exporter base URL (repeatable). Without it, exporter pods are discovered through the Kubernetes API.")
    a("--exporter-namespace", default=_env("exporter-namespace", "monitoring"),
      help="Namespace of the exporter DaemonSet (discovery).")
    a("--exporter-selector", default=_env("exporter-selector", "app.kubernetes.io/name=kvscale-exporter"),
      help="Label selector of the exporter pods (discovery).")
    a("--exporter-port", type=int, default=int(_env("exporter-port", "9400") or 9400),
      help="Port of the exporter pods' /metrics (discovery).")
    a("--refresh-interval", type=float, default=float(_env("refresh-interval", "2") or 2),
      help="direct: seconds between reads of the exporters.")
    a("--max-age", type=float, default=float(_env("max-age", "0") or 0),
      help="A sample older than this is left out. 0: twice --refresh-interval (direct), 60 s (prometheus).")
    a("--window-seconds", type=int, default=int(_env("window-seconds", "60") or 60),
      help="Sliding window of the exporter's quantiles and rates (reported as windowSeconds).")
    a("--prometheus-url", default=_env("prometheus-url"), help="Prometheus base URL for --source prometheus.")
    a("--prometheus-timeout", type=float, default=float(_env("prometheus-timeout", "5") or 5),
      help="Seconds before a PromQL query counts as a source outage.")
    a("--prometheus-authorization", default=_env("prometheus-authorization", ""),
      help="Authorization header value sent to Prometheus (prefer the env twin for secrets).")
    a("--pods-file", type=Path, default=_env("pods-file"),
      help="Outside a cluster: a v1 PodList (YAML or JSON, as kubectl get pods -A -o yaml prints) as pod inventory.")
    a("--kubeconfig", default=_env("kubeconfig"), help="Kubeconfig; default: in-cluster config.")
    a("--enable-external-metrics", action="store_true",
      default=(_env("enable-external-metrics", "false") or "").lower() == "true",
      help="Also serve external.metrics.k8s.io/v1beta1 (off: usually KEDA owns it).")
    a("--insecure-http", action="store_true", default=(_env("insecure-http", "false") or "").lower() == "true",
      help="LOCAL DEMOS ONLY: plain HTTP, no authentication.")
    a("--cert-reload-interval", type=float, default=float(_env("cert-reload-interval", "5") or 5),
      help="Seconds between checks of the certificate and CA files (or the cluster's ConfigMap) for changes.")
    a("--log-level", default=_env("log-level", "info"), choices=("debug", "info", "warning", "error"),
      help="Log verbosity.")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = AdapterSettings.from_args(vars(args))
    except SettingsError as exc:
        print(f"kvscale-adapter: {exc}", file=sys.stderr)
        return 2
    from adapter.auth import AuthConfigError  # imported late: --help stays fast
    from adapter.inventory import InventoryError
    from adapter.runner import run
    from adapter.tls import TLSConfigError

    try:
        asyncio.run(run(settings))
    except KeyboardInterrupt:
        return 0
    except (SettingsError, AuthConfigError, TLSConfigError, InventoryError, OSError) as exc:
        # Startup problems (files, flags, cluster access): one clear line, no traceback.
        print(f"kvscale-adapter: cannot start: {exc}", file=sys.stderr)
        return 2
    return 0
