"""The service as a real process on a loopback socket: the launcher, the bearer header on the
wire, and lesson 3's sequence through the real SDK over HTTP (the other service tests run
in-process)."""

from __future__ import annotations

import httpx
import pytest
from factory_fixtures import Server, intent_rows, train, upload, write_jsonl
from mistralai.client import errors

from helpers.factory import running_factory_url, start_local_factory, stop_local_factory

pytestmark = pytest.mark.slow  # real training or kernels: `make test`, not test-fast


def test_seed_sequence_over_a_socket(tmp_path):
    server = Server(tmp_path / "wire")
    try:
        client = server.client()
        train_id = upload(client, write_jsonl(tmp_path / "train.jsonl", intent_rows(45)))
        valid_id = upload(client, write_jsonl(tmp_path / "valid.jsonl", intent_rows(9, seed=1)))
        job = train(client, train_id, valid_id, steps=10)
        result = client.classifiers.classify(
            model=job.fine_tuned_model, inputs=["play my jazz playlist", "rain forecast"]
        )
        best = [max(r["intent"].scores, key=r["intent"].scores.get) for r in result.results]
        assert best == ["play_music", "weather_query"]
        assert server.health()["worker"] is True
    finally:
        server.stop()


def test_auth_required_with_api_key(tmp_path):
    server = Server(tmp_path / "auth", "--api-key", "s3cret-key")
    try:
        with pytest.raises(errors.SDKError) as e:
            server.client("wrong").files.list()
        assert e.value.status_code == 401
        assert httpx.get(f"{server.url}/v1/models").status_code == 401
        assert server.client("s3cret-key").files.list().total == 0
        assert httpx.get(f"{server.url}/health").status_code == 401  # behind the key too
        assert server.http.get("/health").status_code == 200  # server.http sends the key
        assert "s3cret-key" not in (tmp_path / "auth" / "server.log").read_text()
    finally:
        server.stop()


def test_launcher_is_idempotent(tmp_path):
    data_dir = tmp_path / "launched"
    url = start_local_factory(data_dir)
    try:
        assert start_local_factory(data_dir) == url
        assert running_factory_url(data_dir) == url
        assert httpx.get(f"{url}/health").json()["data_dir"] == str(data_dir.resolve())
    finally:
        assert stop_local_factory(data_dir)
    assert running_factory_url(data_dir) is None
