"""A KEDA-like client of the kvscale scaler, from the same proto, and the certificates it presents.

It calls the service the way KEDA's external scaler does (kedacore/keda pkg/scalers/external_scaler.go):
GetMetricSpec to build the HPA, then every pollingInterval GetMetrics followed by IsActive (its
GetMetricsAndActivity), with the trigger's metadata as ScaledObjectRef.scalerMetadata; an
``external-push`` trigger holds StreamIsActive open. TLS as KEDA's TriggerAuthentication gives it:
the server CA (caCert) and a client certificate (tlsClientCert, tlsClientKey).
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import trustme

pb: Any = importlib.import_module("adapter.scaler.externalscaler_pb2")
pb_grpc: Any = importlib.import_module("adapter.scaler.externalscaler_pb2_grpc")

WAITING = {"family": "kvscale_vllm_requests_waiting", "deployment": "vllm", "target": "5",
           "scalerAddress": "kvscale-adapter.monitoring.svc:9443", "enableTLS": "true"}


@dataclass
class PKI:
    """Server CA and serving pair (on disk, for the adapter), the KEDA client CA, and a rogue CA."""

    dir: Path
    server_ca: trustme.CA = field(default_factory=trustme.CA)
    client_ca: trustme.CA = field(default_factory=trustme.CA)
    rogue_ca: trustme.CA = field(default_factory=trustme.CA)

    def __post_init__(self) -> None:
        self.write_server_pair(self.server_ca)
        self.client_ca.cert_pem.write_to_path(str(self.client_ca_file))

    @property
    def cert_file(self) -> Path:
        return self.dir / "tls.crt"

    @property
    def key_file(self) -> Path:
        return self.dir / "tls.key"

    @property
    def client_ca_file(self) -> Path:
        return self.dir / "keda-client-ca.crt"

    def write_server_pair(self, ca: trustme.CA) -> None:
        leaf = ca.issue_cert("127.0.0.1", "localhost")
        self.cert_file.write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
        self.key_file.write_bytes(leaf.private_key_pem.bytes())

    def credentials(self, cn: str | None = "keda-operator", *, ca: trustme.CA | None = None,
                    trust: trustme.CA | None = None) -> grpc.ChannelCredentials:
        """What KEDA presents: ``cn`` issued by ``ca`` (the KEDA client CA by default); None: no certificate."""
        root = (trust or self.server_ca).cert_pem.bytes()
        if cn is None:
            return grpc.ssl_channel_credentials(root_certificates=root)
        leaf = (ca or self.client_ca).issue_cert(common_name=cn)
        return grpc.ssl_channel_credentials(root_certificates=root, private_key=leaf.private_key_pem.bytes(),
                                            certificate_chain=b"".join(b.bytes() for b in leaf.cert_chain_pems))


class KedaClient:
    """One trigger of one ScaledObject, as KEDA's external scaler calls it."""

    def __init__(self, address: str, credentials: grpc.ChannelCredentials | None, *,
                 metadata: Mapping[str, str], name: str = "llama", namespace: str = "llm") -> None:
        self.channel = (grpc.aio.secure_channel(address, credentials) if credentials is not None
                        else grpc.aio.insecure_channel(address))
        self.stub = pb_grpc.ExternalScalerStub(self.channel)
        self.ref = pb.ScaledObjectRef(name=name, namespace=namespace, scalerMetadata=dict(metadata))

    async def metric_spec(self) -> tuple[str, float]:
        (spec,) = (await self.stub.GetMetricSpec(self.ref, timeout=10)).metricSpecs
        return spec.metricName, spec.targetSizeFloat if spec.targetSizeFloat > 0 else float(spec.targetSize)

    async def value(self, metric_name: str = "") -> float:
        """KEDA's reading of the answer: metricValueFloat when > 0, else the integer."""
        request = pb.GetMetricsRequest(scaledObjectRef=self.ref, metricName=metric_name)
        (value,) = (await self.stub.GetMetrics(request, timeout=10)).metricValues
        return float(value.metricValueFloat) if value.metricValueFloat > 0 else float(value.metricValue)

    async def poll(self) -> tuple[float, bool]:
        """One pollingInterval: GetMetrics, then IsActive (KEDA's GetMetricsAndActivity)."""
        value = await self.value()
        active = (await self.stub.IsActive(self.ref, timeout=10)).result
        return value, bool(active)

    async def stream(self) -> AsyncGenerator[bool, None]:
        """StreamIsActive held open, as KEDA's external-push scaler holds it."""
        call = self.stub.StreamIsActive(self.ref)
        try:
            async for message in call:
                yield bool(message.result)
        finally:
            call.cancel()

    async def close(self) -> None:
        await self.channel.close()


async def status_of(call: Any) -> grpc.StatusCode:
    """The status code an awaited call fails with (AssertionError if it succeeds)."""
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        code: grpc.StatusCode = exc.code()
        return code
    raise AssertionError("the call succeeded")
