"""Test helpers: a controllable fake exporter, the adapter app over it, and fixture paths."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import trustme
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from adapter.direct import DirectProvider, DirectSettings
from adapter.endpoints import StaticEndpoints
from adapter.inventory import load_pod_file
from adapter.selfmetrics import SelfMetrics
from adapter.server import Security, build_app
from adapter.service import MetricsService

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "adapter"
EXPOSITION = (FIXTURES / "exporter.prom").read_bytes()
PODS = FIXTURES / "pods.yaml"
CUSTOM = "/apis/custom.metrics.k8s.io"


class FakeExporter:
    """Serves ``body`` at /metrics with ``status``; tests change both between refreshes."""

    def __init__(self, body: bytes = EXPOSITION) -> None:
        self.body = body
        self.status = 200
        self.hits = 0
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self.server = TestServer(app, host="127.0.0.1")

    async def _metrics(self, request: web.Request) -> web.Response:
        self.hits += 1
        return web.Response(body=self.body, status=self.status, content_type="text/plain")

    @property
    def url(self) -> str:
        return str(self.server.make_url("/"))


@dataclass
class Harness:
    client: TestClient[web.Request, web.Application]
    provider: DirectProvider
    exporter: FakeExporter
    registry: CollectorRegistry


@asynccontextmanager
async def direct_adapter(*, max_age: float = 60.0, external: bool = False,
                         security: Security | None = None,
                         monotonic: Callable[[], float] | None = None) -> AsyncIterator[Harness]:
    exporter = FakeExporter()
    await exporter.server.start_server()
    async with aiohttp.ClientSession() as session:
        provider = DirectProvider(endpoints=StaticEndpoints([exporter.url]), session=session,
                                  settings=DirectSettings(refresh_interval=1.0, max_age=max_age, timeout=2.0),
                                  **({"monotonic": monotonic} if monotonic else {}))
        await provider.refresh_once()
        registry = CollectorRegistry()
        app = build_app(service=MetricsService(provider=provider, pods=load_pod_file(PODS)),
                        security=security or Security(authenticator=None),
                        metrics=SelfMetrics(registry=registry, freshness=provider.snapshot_ages),
                        external=external,
                        not_ready=lambda: () if provider.ready else ("the direct source has not answered yet",))
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        try:
            yield Harness(client, provider, exporter, registry)
        finally:
            await client.close()
            await exporter.server.close()


@dataclass
class AdapterProcess:
    """A real ``python -m adapter`` over TLS with client-certificate users (see :func:`adapter_process`)."""

    proc: subprocess.Popen[bytes]
    port: int
    server_ca: Path
    user: Path  # client certificate and key (PEM) of a system:masters user
    log: Path

    def context(self, *, user: bool = True) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.server_ca))
        if user:
            ctx.load_cert_chain(str(self.user))
        return ctx

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def adapter_process(tmp: Path, *extra: str, exporter_url: str = "http://127.0.0.1:9") -> Iterator[AdapterProcess]:
    """The adapter as its own process on a free port (TLS, client CA, the fixture pods); stopped after."""
    from tests.conftest import PYTHON, REPO, free_port

    server_ca, client_ca = trustme.CA(), trustme.CA()
    server_ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(tmp / "server.pem"))
    server_ca.cert_pem.write_to_path(str(tmp / "server-ca.pem"))
    client_ca.cert_pem.write_to_path(str(tmp / "client-ca.pem"))
    user = client_ca.issue_cert(common_name="tester", organization_name="system:masters")
    user.private_key_and_cert_chain_pem.write_to_path(str(tmp / "user.pem"))
    port = free_port()
    log = tmp / "adapter.log"
    args = [PYTHON, "-m", "adapter", "--bind-address", "127.0.0.1", "--secure-port", str(port),
            "--tls-cert-file", str(tmp / "server.pem"), "--tls-private-key-file", str(tmp / "server.pem"),
            "--client-ca-file", str(tmp / "client-ca.pem"), "--exporter-url", exporter_url,
            "--pods-file", str(PODS), *extra]
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    served = AdapterProcess(proc, port, tmp / "server-ca.pem", tmp / "user.pem", log)
    try:
        wait_tls(port, served.context(user=False), proc)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_tls(port: int, context: ssl.SSLContext, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Until https://127.0.0.1:port/healthz answers; fails at once if the process exited."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=context, timeout=2):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
