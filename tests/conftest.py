"""Fixtures shared by the API tests. Each module defines its own `settings` (a corpus built with
`api_support.build_corpus` and whatever thresholds it needs); these build the service on top of it."""

from __future__ import annotations

import pytest
from api_support import live_server
from fastapi.testclient import TestClient

from api.app import create_app


@pytest.fixture(scope="module")
def client(settings):
    """The app in process, lifespan included."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def server(settings):
    """The app served by a real uvicorn on loopback: its base URL."""
    with live_server(settings) as url:
        yield url
