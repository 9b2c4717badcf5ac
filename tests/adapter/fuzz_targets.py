"""Fuzz targets of the adapter: the label-selector parser, and URL routing with query parameters.

Each target takes the fuzzer's bytes and raises only on a real defect (an ``AssertionError``
naming the property, or any unexpected exception); ``bench/fuzz_adapter.py`` runs them under
atheris (coverage-guided), and tests/adapter/test_fuzz.py runs a short version in CI.

- selectors: :func:`adapter.selectors.parse_selector` either returns a selector or raises
  ``SelectorError``; a parsed selector prints to a string that parses back to the same selector.
- routing: a request to the adapter app, served by its real listener over loopback, is
  answered; never a 5xx; every error is a metav1 Status JSON whose ``code`` is the HTTP status.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import urllib.parse
from typing import Any

from adapter.selectors import SelectorError, parse_selector

VOCABULARY = ["apis", "custom.metrics.k8s.io", "external.metrics.k8s.io", "v1beta1", "v1beta2", "namespaces", "llm",
              "pods", "*", "%2A", "deployments.apps", "statefulsets.apps", "metrics", "nodes", "vllm",
              "vllm-7d9c6-abcde", "kvscale_vllm_requests_waiting", "kvscale_vllm_ttft_seconds", "..", ".", "",
              "%2F", "healthz", "readyz"]
QUERY_KEYS = ["labelSelector", "metricLabelSelector", "watch", "x"]


def check_selector(text: str) -> None:
    try:
        selector = parse_selector(text)
    except SelectorError:
        return
    again = parse_selector(str(selector))
    assert again == selector, f"{text!r} -> {selector} -> {again}"


def selector_input(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


class RoutingTarget:
    """The adapter app (direct source over a fake exporter, the fixture pods) on its real listener, plain
    HTTP on loopback, in a background event loop; :meth:`check` sends one request over a kept-alive socket."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._closers: list[Any] = []
        self.port = 0
        threading.Thread(target=self._run, daemon=True).start()
        if not self._ready.wait(30):
            raise RuntimeError("routing target did not start")
        self._sock: socket.socket | None = None
        self.requests = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        import aiohttp
        from aiohttp import web
        from prometheus_client import CollectorRegistry

        from adapter.authz import AllowAll
        from adapter.direct import DirectProvider, DirectSettings
        from adapter.endpoints import StaticEndpoints
        from adapter.inventory import load_pod_file
        from adapter.selfmetrics import SelfMetrics
        from adapter.server import STATUS_ERRORS, Security, build_app
        from adapter.service import MetricsService
        from exporter.contract.connection import ConnectionLimits
        from exporter.contract.listener import Listener
        from tests.adapter.helpers import PODS, FakeExporter
        from tests.conftest import free_port

        exporter = FakeExporter()
        await exporter.server.start_server()
        session = aiohttp.ClientSession()
        provider = DirectProvider(endpoints=StaticEndpoints([exporter.url]), session=session,
                                  settings=DirectSettings(refresh_interval=3600, max_age=1e9))
        await provider.refresh_once()
        app = build_app(service=MetricsService(provider=provider, pods=load_pod_file(PODS)),
                        security=Security(authenticator=None, authorizer=AllowAll()),
                        metrics=SelfMetrics(registry=CollectorRegistry()), external=True)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self.port = free_port()
        listener = Listener(runner, ConnectionLimits(), None, errors=STATUS_ERRORS)
        await listener.start("127.0.0.1", self.port)
        self._closers = [exporter, session, runner, listener]

    def _connection(self) -> socket.socket:
        if self._sock is None:
            self._sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return self._sock

    def check(self, target: bytes) -> None:
        """One GET of ``target`` (the raw request-target); raises on a defect."""
        sock = self._connection()
        try:
            sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: fuzz\r\n\r\n")
            status, headers, body = _read_response(sock)
        except OSError:
            self._reset()
            raise
        self.requests += 1
        if headers.get("connection", "").lower() == "close":
            self._reset()
        assert status < 500, f"{target!r}: HTTP {status} {body[:300]!r}"
        if status >= 400:
            assert headers.get("content-type", "").startswith("application/json"), f"{target!r}: {status} not JSON"
            doc = json.loads(body)
            assert (doc.get("kind"), doc.get("code")) == ("Status", status), f"{target!r}: {doc}"

    def _reset(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before an answer: {buf[:200]!r}")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed mid-body")
        rest += chunk
    return status, headers, rest[:length]


def routing_input(data: bytes) -> bytes:
    """A request-target from fuzz bytes: mostly path segments and query parameters as a client would
    encode them, sometimes the raw bytes (what aiohttp's own parser refuses must be a Status too)."""
    if not data:
        return b"/"
    mode, data = data[0] % 4, data[1:]
    if mode == 0:
        raw = bytes(b for b in data if 0x21 <= b < 0x7F or b >= 0x80)  # no spaces or controls: one request line
        return b"/" + raw
    text = data.decode("utf-8", errors="replace")
    parts = text.split("\x00")
    segments, query = parts[:-1] or parts, parts[-1] if len(parts) > 1 else ""
    path = "/".join(VOCABULARY[ord(s[0]) % len(VOCABULARY)] if s and s[0] < "\x20" else
                    urllib.parse.quote(s, safe="*.-_~") for s in segments)
    prefix = ("/apis/custom.metrics.k8s.io/v1beta2/namespaces/llm/", "/apis/custom.metrics.k8s.io/v1beta1/",
              "/apis/external.metrics.k8s.io/v1beta1/namespaces/llm/")[mode - 1]
    params = [(QUERY_KEYS[i % len(QUERY_KEYS)], v) for i, v in enumerate(query.split("&")) if query]
    qs = urllib.parse.urlencode(params)
    return (prefix + path + ("?" + qs if qs else "")).encode("utf-8")
