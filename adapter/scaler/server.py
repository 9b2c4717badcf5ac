"""The KEDA scaler's gRPC server: its own port, TLS with client certificates, reloaded like the HTTPS server.

KEDA connects with the ``tlsClientCert`` / ``tlsClientKey`` / ``caCert`` of its
TriggerAuthentication. The server requires a client certificate issued by the KEDA client CA
(``--keda-client-ca-file``): a caller without one never completes the handshake. Which of that CA's
names may call is :class:`~adapter.scaler.servicer.CallerCheck`'s. The serving pair and the CA are
re-read when their files change (:func:`adapter.tls.follow`): gRPC asks :class:`Credentials` before
each new handshake and gets a new configuration once, so rotation needs no restart.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from dataclasses import dataclass
from typing import Any

import grpc

from adapter.scaler.servicer import ExternalScaler
from adapter.tls import TLSConfigError, TLSFiles, build_context, follow

pb_grpc: Any = importlib.import_module("adapter.scaler.externalscaler_pb2_grpc")

log = logging.getLogger(__name__)
MAX_STREAMS = 4096  # concurrent calls, StreamIsActive included (one per external-push trigger)


class Credentials:
    """The serving pair and client CA for gRPC; :meth:`reload` stages new files, :meth:`fetch` hands them over."""

    def __init__(self, files: TLSFiles) -> None:
        self._files = files
        self.initial = self._read()
        self._pending: Any = None

    def _read(self) -> Any:
        build_context(self._files)  # the same checks as the HTTPS server: a bad pair raises TLSConfigError
        try:
            key, cert = self._files.key.read_bytes(), self._files.cert.read_bytes()
            ca = b"".join(p.read_bytes() for p in self._files.client_cas)
        except OSError as exc:
            raise TLSConfigError(f"cannot read TLS files {self._files}: {exc}") from exc
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def reload(self) -> None:
        self._pending = self._read()

    def fetch(self) -> Any:
        """Called by gRPC (on its own threads) before each handshake: the staged configuration once, else None."""
        staged, self._pending = self._pending, None
        return staged

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(self.initial, self.fetch, require_client_authentication=True)


@dataclass(frozen=True)
class ScalerEndpoint:
    bind_address: str
    port: int
    tls: TLSFiles | None  # None: plain (local demos only, --insecure-http)
    reload_interval: float = 5.0


async def start(scaler: ExternalScaler, endpoint: ScalerEndpoint,
                tasks: list[asyncio.Task[None]]) -> tuple[grpc.aio.Server, int]:
    """Serve until stopped; returns the server and the bound port (``port`` 0 picks a free one)."""
    server = grpc.aio.server(maximum_concurrent_rpcs=MAX_STREAMS)
    pb_grpc.add_ExternalScalerServicer_to_server(scaler, server)
    address = f"{endpoint.bind_address}:{endpoint.port}"
    if endpoint.tls is None:
        port = server.add_insecure_port(address)
    else:
        credentials = Credentials(endpoint.tls)
        port = server.add_secure_port(address, credentials.server_credentials())
        tasks.append(asyncio.create_task(follow(endpoint.tls, credentials.reload, interval=endpoint.reload_interval)))
    await server.start()
    log.info("serving KEDA's externalscaler.ExternalScaler on %s:%d (%s)", endpoint.bind_address, port,
             "TLS, client certificates required" if endpoint.tls else "PLAIN, NO AUTHENTICATION")
    return server, port
