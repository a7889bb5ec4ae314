"""The service fixtures the service test modules share.

``server``/``client``: one in-process service per module with every trainer, driven by the real
SDK (see ``factory_fixtures.InProcess``); a module sets ``SERVICE_OPTIONS = {"max_upload_mb":
0.25}`` to configure it. ``make_client``/``api``: a TF-IDF-only in-process service per test
(see ``inproc.py``); ``live``: the app on a real socket in a thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from factory_fixtures import InProcess
from fastapi.testclient import TestClient
from inproc import tfidf_registry

from helpers.factory.app import create_app
from helpers.factory.deps import Settings
from helpers.factory.header_timeout import http_protocol


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """``make_client(**settings)``: a started in-process service on ``tmp_path/'factory'``."""
    clients: list[TestClient] = []

    def make(**settings) -> TestClient:
        settings.setdefault("data_dir", tmp_path / "factory")
        client = TestClient(
            create_app(Settings(**settings), tfidf_registry()), base_url="http://127.0.0.1"
        )
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture
def api(make_client) -> TestClient:
    return make_client()


@pytest.fixture
def live(tmp_path: Path):
    """``live(**settings)``: the app served by a real uvicorn on a loopback port, in a thread."""
    import threading

    import uvicorn

    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(extra_routes=None, **settings):
        settings.setdefault("data_dir", tmp_path / "factory")
        app = create_app(Settings(**settings), tfidf_registry())
        for path, endpoint in (extra_routes or {}).items():
            app.add_api_route(path, endpoint)
        limits = app.state.factory.settings.limits
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_config=None,
            http=http_protocol(limits.header_timeout_s),  # as `serve` runs it
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            assert thread.is_alive(), "uvicorn did not start"
            threading.Event().wait(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def server(request, module_tmp):
    options = getattr(request.module, "SERVICE_OPTIONS", {})
    service = InProcess(module_tmp(request.module.__name__.rsplit(".", 1)[-1]), **options)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def client(server):
    return server.client()
