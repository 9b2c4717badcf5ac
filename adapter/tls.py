"""The serving TLS context, and reloading it when the certificate files change.

Client certificates are optional at the TLS layer (``CERT_OPTIONAL``): health
probes come without one; the authenticator decides what a certificate is worth.
Reloading loads the new pair into the same ``SSLContext``, so new connections get
it without a restart (cert-manager rotates serving certificates in place).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


# TLS 1.2: forward-secret AEAD suites only (no CBC, no static RSA); TLS 1.3 suites are all AEAD.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


class TLSConfigError(Exception):
    """The certificate, key or CA files cannot be loaded."""


@dataclass(frozen=True)
class TLSFiles:
    cert: Path
    key: Path
    client_cas: tuple[Path, ...] = ()


def build_context(files: TLSFiles, *, extra_ca_pem: bytes = b"") -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    load_into(ctx, files, extra_ca_pem=extra_ca_pem)
    return ctx


def load_into(ctx: ssl.SSLContext, files: TLSFiles, *, extra_ca_pem: bytes = b"") -> None:
    try:
        ctx.load_cert_chain(str(files.cert), str(files.key))
        cadata = b"".join(p.read_bytes() for p in files.client_cas) + extra_ca_pem
        if cadata:
            ctx.load_verify_locations(cadata=cadata.decode("ascii"))
            ctx.verify_mode = ssl.CERT_OPTIONAL
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise TLSConfigError(f"cannot load TLS files {files}: {exc}") from exc


def _stamp(files: TLSFiles) -> tuple[float, ...]:
    out = []
    for path in (files.cert, files.key, *files.client_cas):
        try:
            out.append(path.stat().st_mtime)
        except OSError:
            out.append(-1.0)
    return tuple(out)


async def watch(ctx: ssl.SSLContext, files: TLSFiles, *, interval: float = 5.0,
                on_reload: Callable[[], None] | None = None) -> None:
    """Poll the files' mtimes; on a change, reload. A half-written pair is retried next poll."""
    await follow(files, lambda: load_into(ctx, files), interval=interval, on_reload=on_reload)


async def follow(files: TLSFiles, load: Callable[[], None], *, interval: float = 5.0,
                 on_reload: Callable[[], None] | None = None) -> None:
    """Poll the files' mtimes; on a change call ``load`` (raising TLSConfigError keeps the previous pair:
    retried next poll). The HTTPS server loads into its SSLContext, the KEDA gRPC server its credentials."""
    last = _stamp(files)
    while True:
        await asyncio.sleep(interval)
        now = _stamp(files)
        if now == last:
            continue
        try:
            load()
        except TLSConfigError as exc:
            log.error("TLS reload failed, keeping the previous certificate: %s", exc)
            continue
        last = now
        log.info("reloaded TLS certificate from %s", files.cert)
        if on_reload is not None:
            on_reload()
