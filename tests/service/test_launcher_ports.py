"""start_local_factory when another process takes its port first (concurrent batch points)."""

from __future__ import annotations

import socket

import httpx
import pytest

from helpers.factory import launcher


@pytest.fixture
def taken_port():
    """A port some other process is listening on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.slow  # a service process
def test_a_port_taken_before_the_service_binds_it_is_retried(tmp_path, taken_port, monkeypatch):
    picked = []
    real = launcher._free_port

    def race(host):  # the first free port is taken by someone else before the service binds
        picked.append(taken_port if not picked else real(host))
        return picked[-1]

    monkeypatch.setattr(launcher, "_free_port", race)
    url = launcher.start_local_factory(tmp_path / "factory")
    try:
        assert len(picked) == 2 and url == f"http://127.0.0.1:{picked[1]}"
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200
    finally:
        assert launcher.stop_local_factory(tmp_path / "factory")


@pytest.mark.slow  # a service process
def test_an_explicit_port_in_use_is_an_error(tmp_path, taken_port):
    with pytest.raises(RuntimeError, match="found its port in use 1 time"):
        launcher.start_local_factory(tmp_path / "factory", port=taken_port)
