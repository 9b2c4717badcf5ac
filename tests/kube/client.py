"""Real ``kubernetes`` clients whose requests go to a fake API server."""

from __future__ import annotations

from typing import Any

from tests.kube.apiserver import FakeApiServer


def api_client(server: FakeApiServer | str) -> Any:
    """A real ``kubernetes`` ApiClient whose requests go to the fake server (no retries: faults stay visible)."""
    from kubernetes import client

    config = client.Configuration()
    config.host = server if isinstance(server, str) else server.url
    config.retries = 0
    return client.ApiClient(config)


def core_v1(server: FakeApiServer | str) -> Any:
    from kubernetes import client

    return client.CoreV1Api(api_client(server))
