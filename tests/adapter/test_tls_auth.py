"""TLS and aggregation-layer authentication, exercised with real certificates and the real kubectl."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from adapter.auth import Authenticator, RequestHeaderConfig
from adapter.server import Security
from adapter.tls import TLSFiles, build_context, watch
from tests.adapter.helpers import CUSTOM, direct_adapter
from tests.conftest import REPO, free_port

KUBECTL = str(REPO / ".venv" / "bin" / "kubectl")
PODS_PATH = CUSTOM + "/v1beta2/namespaces/llm/pods/*/kvscale_vllm_requests_waiting?labelSelector=app%3Dvllm"


@dataclass
class PKI:
    dir: Path
    server_ca: trustme.CA
    proxy_ca: trustme.CA
    client_ca: trustme.CA
    rogue_ca: trustme.CA

    def client_files(self, ca: trustme.CA, name: str, org: str | None = None) -> tuple[Path, Path]:
        cert = ca.issue_cert(common_name=name, organization_name=org) if org else ca.issue_cert(common_name=name)
        crt, key = self.dir / f"{name}-{id(ca)}.crt", self.dir / f"{name}-{id(ca)}.key"
        crt.write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
        key.write_bytes(cert.private_key_pem.bytes())
        return crt, key


@dataclass
class Served:
    url: str
    pki: PKI
    ca_file: Path


@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    return PKI(tmp_path, trustme.CA(), trustme.CA(), trustme.CA(), trustme.CA())


@pytest.fixture
async def served(pki: PKI) -> AsyncIterator[Served]:
    crt, key = pki.dir / "server.crt", pki.dir / "server.key"
    leaf = pki.server_ca.issue_cert("127.0.0.1", "localhost")
    crt.write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    ca_file = pki.dir / "server-ca.pem"
    ca_file.write_bytes(pki.server_ca.cert_pem.bytes())
    authenticator = Authenticator(
        requestheader=RequestHeaderConfig(pki.proxy_ca.cert_pem.bytes(), ("front-proxy-client",)),
        client_ca_pem=pki.client_ca.cert_pem.bytes())
    async with direct_adapter(security=Security(authenticator=authenticator)) as h:
        runner = web.AppRunner(h.client.app)  # the same app, now behind TLS on a real port
        await runner.setup()
        port = free_port()
        site = web.TCPSite(runner, "127.0.0.1", port,
                           ssl_context=build_context(TLSFiles(crt, key), extra_ca_pem=authenticator.trusted_pem))
        await site.start()
        try:
            yield Served(f"https://127.0.0.1:{port}", pki, ca_file)
        finally:
            await runner.cleanup()


async def kubectl(served: Served, *args: str, cert: tuple[Path, Path] | None = None) -> tuple[int, str, str]:
    home = served.pki.dir / "home"
    home.mkdir(exist_ok=True)
    auth = ["--client-certificate", str(cert[0]), "--client-key", str(cert[1])] if cert else ["--token=dummy"]
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, f"--server={served.url}", f"--certificate-authority={served.ca_file}", *auth, *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "HOME": str(home), "KUBECONFIG": str(home / "none")})
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_kubectl_reads_pods_metrics_v1beta2_and_v1beta1(served: Served) -> None:
    user = served.pki.client_files(served.pki.client_ca, "hpa-tester", "system:masters")
    rc, out, err = await kubectl(served, "get", "--raw", PODS_PATH, cert=user)
    assert rc == 0, err
    body = json.loads(out)
    assert {i["describedObject"]["name"]: i["value"] for i in body["items"]} == \
        {"vllm-7d9c6-abcde": "5", "vllm-7d9c6-fghij": "12k"}
    rc, out, err = await kubectl(served, "get", "--raw", PODS_PATH.replace("v1beta2", "v1beta1"), cert=user)
    assert rc == 0, err
    assert json.loads(out)["items"][0]["metricName"] == "kvscale_vllm_requests_waiting"


async def test_kubectl_reads_an_object_metric(served: Served) -> None:
    user = served.pki.client_files(served.pki.client_ca, "hpa-tester")
    path = CUSTOM + "/v1beta2/namespaces/llm/deployments.apps/vllm/kvscale_vllm_requests_waiting"
    rc, out, err = await kubectl(served, "get", "--raw", path, cert=user)
    assert rc == 0, err
    item = json.loads(out)["items"][0]
    assert (item["describedObject"]["kind"], item["value"]) == ("Deployment", "12005")


async def test_kubectl_api_versions_discovers_both_versions(served: Served) -> None:
    user = served.pki.client_files(served.pki.client_ca, "hpa-tester")
    rc, out, err = await kubectl(served, "api-versions", cert=user)
    assert rc == 0, err
    assert {"custom.metrics.k8s.io/v1beta1", "custom.metrics.k8s.io/v1beta2"} <= set(out.split())


async def test_kubectl_without_client_certificate_is_unauthorized(served: Served) -> None:
    rc, _, err = await kubectl(served, "get", "--raw", PODS_PATH)
    assert rc != 0
    assert "Unauthorized" in err


async def fetch(served: Served, path: str, *, cert: tuple[Path, Path] | None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, object] | str]:
    ctx = ssl.create_default_context(cafile=str(served.ca_file))
    if cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    async with aiohttp.ClientSession() as session, \
            session.get(served.url + path, ssl=ctx, headers=headers or {}) as resp:
        if resp.content_type == "application/json":
            return resp.status, await resp.json()
        return resp.status, await resp.text()


async def test_front_proxy_certificate_with_remote_user_is_accepted(served: Served) -> None:
    proxy = served.pki.client_files(served.pki.proxy_ca, "front-proxy-client")
    status, body = await fetch(served, PODS_PATH, cert=proxy,
                               headers={"X-Remote-User": "system:kube-aggregator", "X-Remote-Group": "system:masters"})
    assert status == 200, body


@pytest.mark.parametrize("who", ["no-certificate", "rogue-ca-same-cn", "proxy-ca-wrong-cn"])
async def test_spoofed_remote_user_is_rejected(served: Served, who: str) -> None:
    pki = served.pki
    cert = {"no-certificate": None,
            "rogue-ca-same-cn": pki.client_files(pki.rogue_ca, "front-proxy-client"),
            "proxy-ca-wrong-cn": pki.client_files(pki.proxy_ca, "someone-else")}[who]
    headers = {"X-Remote-User": "system:admin", "X-Remote-Group": "system:masters"}
    if who == "rogue-ca-same-cn":
        # The TLS layer refuses a certificate from an untrusted CA outright.
        with pytest.raises(aiohttp.ClientError):
            await fetch(served, PODS_PATH, cert=cert, headers=headers)
        return
    status, body = await fetch(served, PODS_PATH, cert=cert, headers=headers)
    assert status == 401
    assert isinstance(body, dict) and (body["kind"], body["reason"], body["code"]) == ("Status", "Unauthorized", 401)


async def test_proxy_certificate_without_remote_user_is_unauthorized(served: Served) -> None:
    proxy = served.pki.client_files(served.pki.proxy_ca, "front-proxy-client")
    status, _ = await fetch(served, PODS_PATH, cert=proxy)
    assert status == 401


async def test_client_certificate_ignores_remote_headers(served: Served) -> None:
    """A direct mTLS user is its certificate's CN, whatever X-Remote-User claims."""
    user = served.pki.client_files(served.pki.client_ca, "plain-user")
    auth = Authenticator(requestheader=RequestHeaderConfig(served.pki.proxy_ca.cert_pem.bytes()),
                         client_ca_pem=served.pki.client_ca.cert_pem.bytes())
    der = x509.load_pem_x509_certificate(user[0].read_bytes()).public_bytes(Encoding.DER)
    got = auth.authenticate(der, None, {"X-Remote-User": ["system:admin"]})
    assert got is not None and got.name == "plain-user"


async def test_health_needs_no_certificate(served: Served) -> None:
    for path in ("/healthz", "/readyz"):
        status, _ = await fetch(served, path, cert=None)
        assert status == 200


async def test_serving_certificate_is_reloaded_when_files_change(pki: PKI) -> None:
    crt, key = pki.dir / "s.crt", pki.dir / "s.key"
    first, second = trustme.CA(), trustme.CA()
    leaf = first.issue_cert("127.0.0.1")
    crt.write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    files = TLSFiles(crt, key)
    ctx = build_context(files)
    app = web.Application()
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/healthz", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ctx).start()
    watcher = asyncio.create_task(watch(ctx, files, interval=0.05))

    async def trusted_by(ca: trustme.CA) -> bool:
        client = ssl.create_default_context()
        ca.configure_trust(client)
        try:
            async with aiohttp.ClientSession() as s, s.get(f"https://127.0.0.1:{port}/healthz", ssl=client) as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    try:
        assert await trusted_by(first)
        leaf = second.issue_cert("127.0.0.1")
        key.write_bytes(leaf.private_key_pem.bytes())
        crt.write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
        os.utime(crt, (crt.stat().st_mtime + 5, crt.stat().st_mtime + 5))  # coarse mtime filesystems
        for _ in range(400):  # up to ~20 s on a loaded machine
            if await trusted_by(second):
                break
            await asyncio.sleep(0.05)
        assert await trusted_by(second)
        assert not await trusted_by(first)
    finally:
        watcher.cancel()
        await runner.cleanup()


async def test_repeated_group_headers_in_mixed_case_keep_every_value(served: Served) -> None:
    """Header names are case-insensitive: X-Remote-Group and x-remote-group are one header (Go canonicalizes)."""
    proxy = served.pki.client_files(served.pki.proxy_ca, "front-proxy-client")
    auth = Authenticator(requestheader=RequestHeaderConfig(served.pki.proxy_ca.cert_pem.bytes()))
    der = x509.load_pem_x509_certificate(proxy[0].read_bytes()).public_bytes(Encoding.DER)
    got = auth.authenticate(der, None, {"X-Remote-User": ["alice"], "X-Remote-Group": ["team-a"],
                                        "x-remote-group": ["team-b"], "X-REMOTE-GROUP": ["team-c"]})
    assert got is not None and got.groups == ("team-a", "team-b", "team-c")
