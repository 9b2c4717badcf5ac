"""The assembled adapter process in "cluster" mode against the fake API server: pods from the watch,
front-proxy settings from the ConfigMap, delegated authorization through SubjectAccessReview, /readyz
waiting for the first pod list."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import trustme

from tests.adapter.helpers import CUSTOM, FakeExporter
from tests.conftest import PYTHON, REPO, free_port
from tests.kube.apiserver import FakeApiServer
from tests.kube.objects import make_configmap, make_pod, status

HPA = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
CONFIGMAP = "extension-apiserver-authentication"
QUERY = CUSTOM + "/v1beta2/namespaces/llm/pods/*/kvscale_vllm_requests_waiting?labelSelector=app%3Dvllm"


class Cluster:
    def __init__(self, kube: FakeApiServer, url: str, proxy: ssl.SSLContext, log: Path, server_ca_pem: str) -> None:
        self.kube, self.url, self.proxy, self.log = kube, url, proxy, log
        self.server_ca_pem = server_ca_pem

    async def get(self, path: str, user: str) -> tuple[int, dict[str, object]]:
        headers = {"X-Remote-User": user, "X-Remote-Group": "system:serviceaccounts"}
        async with aiohttp.ClientSession() as s, s.get(self.url + path, ssl=self.proxy, headers=headers) as r:
            return r.status, await r.json(content_type=None)


@pytest.fixture
async def cluster(tmp_path: Path, apiserver: FakeApiServer) -> AsyncIterator[Cluster]:
    kube, exporter = apiserver, FakeExporter()
    await exporter.server.start_server()
    for name in ("vllm-7d9c6-abcde", "vllm-7d9c6-fghij"):
        kube.store.put(make_pod(name, namespace="llm"))
    server_ca, proxy_ca = trustme.CA(), trustme.CA()
    server_ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    kube.store.put(make_configmap(CONFIGMAP, "kube-system", {
        "requestheader-client-ca-file": proxy_ca.cert_pem.bytes().decode(),
        "requestheader-allowed-names": json.dumps(["front-proxy-client"]),
        "requestheader-username-headers": json.dumps(["X-Remote-User"]),
        "requestheader-group-headers": json.dumps(["X-Remote-Group"]),
        "requestheader-extra-headers-prefix": json.dumps(["X-Remote-Extra-"])}))
    kube.allowed_users = {HPA}
    (tmp_path / "kubeconfig").write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "fake", "cluster": {"server": kube.url}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "fake", "user": "u"}}]}))
    proxy = ssl.create_default_context()
    server_ca.configure_trust(proxy)
    proxy_ca.issue_cert(common_name="front-proxy-client").configure_cert(proxy)
    port = free_port()
    log = tmp_path / "adapter.log"
    out = log.open("wb")
    proc = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "adapter", "--bind-address", "127.0.0.1", "--secure-port", str(port),
        "--tls-cert-file", str(tmp_path / "server.pem"), "--tls-private-key-file", str(tmp_path / "server.pem"),
        "--kubeconfig", str(tmp_path / "kubeconfig"), "--authorization-mode", "delegated",
        "--exporter-url", exporter.url, "--cert-reload-interval", "0.2",
        cwd=REPO, stdout=out, stderr=asyncio.subprocess.STDOUT)
    try:
        yield Cluster(kube, f"https://127.0.0.1:{port}", proxy, log, server_ca.cert_pem.bytes().decode())
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 20)
        out.close()
        await exporter.server.close()


async def poll(cluster: Cluster, path: str, user: str, want: int, timeout: float = 40.0) -> dict[str, object]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            status, body = await cluster.get(path, user)
            if status == want:
                return body
        except aiohttp.ClientError:
            status, body = 0, {}
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{path}: {status} {body}\n{cluster.log.read_text()}")
        await asyncio.sleep(0.2)


async def readyz(cluster: Cluster) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(cluster.url + "/readyz", ssl=cluster.proxy) as r:
        return r.status, await r.text()


@pytest.fixture
def pods_refused(apiserver: FakeApiServer) -> None:
    """Pod lists fail (before the adapter starts, when asked for ahead of ``cluster``) until a test lifts it."""
    apiserver.failing_for["pods"] = status(500, "InternalError", "etcdserver: leader changed")


async def test_readyz_waits_for_the_first_pod_list(pods_refused: None, cluster: Cluster) -> None:
    deadline = asyncio.get_running_loop().time() + 40
    while True:  # up and serving, with the pod list still refused
        try:
            code, text = await readyz(cluster)
            if "watch of pods" in text:
                break
        except aiohttp.ClientError:
            pass
        assert asyncio.get_running_loop().time() < deadline, cluster.log.read_text()
        await asyncio.sleep(0.1)
    assert code == 503
    assert "watch of pods in all namespaces: no successful list yet" in text
    assert "500 Internal Server Error" in text
    cluster.kube.failing_for.clear()
    while (await readyz(cluster)) != (200, "ok"):
        assert asyncio.get_running_loop().time() < deadline, await readyz(cluster)
        await asyncio.sleep(0.1)
    await poll(cluster, QUERY, HPA, 200)


async def test_cluster_mode_end_to_end(cluster: Cluster) -> None:
    body = await poll(cluster, QUERY, HPA, 200)
    items = body["items"]
    assert isinstance(items, list)
    assert [i["describedObject"]["name"] for i in items] == ["vllm-7d9c6-abcde", "vllm-7d9c6-fghij"]
    # A pod that appears through the watch is served without a restart.
    cluster.kube.store.put(make_pod("vllm-sts-0", namespace="llm"))
    deadline = asyncio.get_running_loop().time() + 30
    names: list[str] = []
    while names != ["vllm-7d9c6-abcde", "vllm-7d9c6-fghij", "vllm-sts-0"]:
        assert asyncio.get_running_loop().time() < deadline, names
        await asyncio.sleep(0.2)
        _, body = await cluster.get(QUERY, HPA)
        names = [i["describedObject"]["name"] for i in body.get("items", [])]  # type: ignore[attr-defined]
    # Someone the SubjectAccessReview denies gets 403; the review carried the pods attributes.
    denied = await poll(cluster, QUERY, "mallory", 403)
    assert denied["reason"] == "Forbidden"
    review = next(r for r in cluster.kube.reviews if r["spec"]["user"] == "mallory")
    assert review["spec"]["resourceAttributes"]["resource"] == "pods"
    assert review["spec"]["resourceAttributes"]["namespace"] == "llm"


async def test_front_proxy_ca_rotation_in_the_configmap_is_followed(cluster: Cluster) -> None:
    await poll(cluster, QUERY, HPA, 200)
    new_ca = trustme.CA()
    configmap = cluster.kube.store.get("configmaps", "kube-system", CONFIGMAP)
    assert configmap is not None
    configmap["data"]["requestheader-client-ca-file"] = new_ca.cert_pem.bytes().decode()
    cluster.kube.store.put(configmap)
    new_proxy = ssl.create_default_context(cafile=None)
    new_proxy.load_verify_locations(cadata=cluster.server_ca_pem)
    new_ca.issue_cert(common_name="front-proxy-client").configure_cert(new_proxy)
    old_proxy, cluster.proxy = cluster.proxy, new_proxy
    await poll(cluster, QUERY, HPA, 200)  # the new front-proxy certificate is believed
    cluster.proxy = old_proxy
    await poll(cluster, QUERY, HPA, 401)  # and the old CA no longer vouches for X-Remote-User


def test_authorization_is_delegated_in_a_cluster_and_loud_when_off(caplog: pytest.LogCaptureFixture) -> None:
    import kubernetes

    from adapter.authz import DelegatedAuthorizer
    from adapter.runner import _authorizer
    from adapter.settings import load_settings

    tls = ["--tls-cert-file", "s.pem", "--tls-private-key-file", "s.pem", "--pods-file", "p.yaml",
           "--exporter-url", "http://e", "--client-ca-file", "ca.pem"]
    settings = load_settings(tls, {})
    assert settings.authorization_mode == "auto"
    in_cluster = _authorizer(settings, kubernetes)
    assert isinstance(in_cluster, DelegatedAuthorizer)
    in_cluster.close()
    with caplog.at_level("WARNING", "adapter"):
        assert _authorizer(settings, None) is None
    assert "authorization is OFF" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", "adapter"):
        assert _authorizer(load_settings([*tls, "--authorization-mode", "none"], {}), kubernetes) is None
    assert "authorization is OFF (--authorization-mode none)" in caplog.text
