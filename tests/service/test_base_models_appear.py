"""Lesson 06's multilingual encoder: downloaded on demand, listed by a service already running."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from factory_fixtures import Server

from helpers import data
from helpers.factory.trainers import models

MULTI = models.MULTILINGUAL_ENCODER


def put_in_hub_cache(cache: Path, repo_id: str, files: Path) -> None:
    """Files laid out as huggingface_hub's cache keeps a downloaded snapshot."""
    root = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = root / "snapshots" / ("0" * 40)
    shutil.copytree(files, snapshot)
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text("0" * 40)


@pytest.mark.slow  # trains an encoder
def test_an_encoder_cached_after_start_is_listed_and_trains(tmp_path):
    cache = tmp_path / "hub"
    cache.mkdir()
    server = Server(tmp_path / "factory", env={"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"})
    try:
        client = server.client()

        def base_ids():
            return [m.id for m in client.models.list().data if m.type == "base"]

        assert "multilingual-minilm-l12-v2" not in base_ids()
        # what ensure_encoder's download leaves behind (the small English encoder's files
        # stand in for the multilingual weights, which are not on this machine)
        put_in_hub_cache(cache, MULTI, models._from_package(models.DEFAULT_ENCODER))
        assert "multilingual-minilm-l12-v2" in base_ids()
        card = client.models.retrieve(model_id="multilingual-minilm-l12-v2")
        assert card.capabilities.fine_tuning
    finally:
        server.stop()


def test_reasons_name_what_keeps_the_encoder_away(monkeypatch, tmp_path):
    monkeypatch.setattr(models, "_from_cache", lambda name: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert models.ensure_encoder("multilingual-minilm-l12-v2") == (
        "the hub is unreachable (offline mode: HF_HUB_OFFLINE is set)"
    )
    assert models.ensure_encoder(MULTI, download=False) == (
        "its weights are not on this machine and downloading them is switched off"
    )
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(models, "hub_offline", lambda: False)
    monkeypatch.setattr(
        data, "_hub_unreachable", lambda: "https://huggingface.co unreachable: ConnectError"
    )
    assert models.ensure_encoder(MULTI) == (
        "the hub is unreachable (https://huggingface.co unreachable: ConnectError)"
    )


def test_auto_downloads_only_with_a_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(models, "_from_cache", lambda name: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert models.ensure_encoder(MULTI, download="auto") == (
        "on a CPU runtime it is not downloaded by default: fine-tuning it here takes about "
        "15-20 minutes (a GPU runtime: about a minute); set download_multilingual = True to "
        "fetch it anyway"
    )
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert models.ensure_encoder(MULTI, download="auto") == (
        "the hub is unreachable (offline mode: HF_HUB_OFFLINE is set)"  # it tried
    )


@pytest.mark.parametrize("model", ["minilm-l6-v2", "tfidf-logreg"])
def test_nothing_to_do_for_a_local_encoder_or_a_non_encoder(model, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert models.ensure_encoder(model) is None
