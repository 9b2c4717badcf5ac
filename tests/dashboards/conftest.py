"""Fixtures of the dashboard tests: the default build."""

from __future__ import annotations

from typing import Any

import pytest

from dashboards import build
from exporter.contract.policy import Policy


@pytest.fixture(scope="session")
def default_build() -> dict[str, dict[str, Any]]:
    return build.render(Policy())
