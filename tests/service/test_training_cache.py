"""The content-addressed training cache (FACTORY_TRAINING_CACHE): the same recipe, data and
seed train once; anything that changes the weights trains again. Real service, real training."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from inproc import TERMINAL, jsonl, rows, upload, wait

from helpers.factory import training_cache
from helpers.factory.trainers.tfidf import TfidfLogRegTrainer


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(training_cache.ENV, str(folder))
    return folder


def run(api, content: bytes, name="train.jsonl", **hyperparameters) -> dict:
    file_id = upload(api, content, name=name)
    valid_id = upload(api, jsonl(rows(12)), name="valid.jsonl")
    job = api.post(
        "/v1/fine_tuning/jobs",
        json={
            "model": "tfidf-logreg",
            "training_files": [{"file_id": file_id}],
            "validation_files": [valid_id],
            "hyperparameters": {"training_steps": 12, **hyperparameters},
            "auto_start": True,
        },
    ).json()
    job = wait(api, job["id"], TERMINAL)
    assert job["status"] == "SUCCESS", job["events"]
    return job


def entries(cache) -> list:
    return [p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")]


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()[:12]


def hit(job: dict) -> bool:
    return any(e["data"].get("info") == training_cache.HIT_INFO for e in job["events"])


def checkpoints(api, job: dict) -> list:
    body = api.get(f"/v1/fine_tuning/jobs/{job['id']}").json()
    return [(c["step_number"], c["metrics"]) for c in body["checkpoints"]]


def scores(api, model: str) -> list:
    texts = ["play some jazz", "will it rain", "wake me at seven"]
    body = api.post("/v1/classifications", json={"model": model, "input": texts}).json()
    return [r["intent"]["scores"] for r in body["results"]]


def test_the_same_job_trains_once_and_replays_its_checkpoints(api, cache):
    data = jsonl(rows(30))
    first = run(api, data)
    second = run(api, data, name="renamed.jsonl")  # names and ids are not part of the key
    assert not hit(first) and hit(second)
    assert checkpoints(api, second) == checkpoints(api, first) != []
    assert scores(api, second["fine_tuned_model"]) == scores(api, first["fine_tuned_model"])
    (entry,) = entries(cache)
    reports = json.loads((entry / training_cache.REPORTS).read_text())
    assert [r["step"] for r in reports][-1] == 12
    # the lookup log: one miss (with its training time), then one hit, with what decided the key
    lines = (cache / training_cache.LOOKUPS).read_text().splitlines()
    miss, found = (json.loads(line) for line in lines)
    assert (miss["hit"], found["hit"]) == (False, True)
    assert miss["key"] == found["key"] == entry.name[:12]
    assert miss["seconds"] >= 0 and "seconds" not in found
    assert miss["model"] == "tfidf-logreg" and miss["hyperparameters"]["training_steps"] == 12
    assert miss["files"] == found["files"] == [f"{len(data)} bytes, sha256 {sha(data)}"]


def test_data_and_hyperparameters_are_part_of_the_key(api, cache):
    data = jsonl(rows(30))
    run(api, data)
    assert not hit(run(api, data, learning_rate=0.5))
    assert not hit(run(api, data, training_steps=11))
    assert not hit(run(api, jsonl(rows(31))))
    assert len(entries(cache)) == 4


def test_without_the_variable_nothing_is_cached(api, tmp_path, monkeypatch):
    monkeypatch.delenv(training_cache.ENV, raising=False)
    data = jsonl(rows(30))
    run(api, data)
    assert not hit(run(api, data))


def test_trainer_settings_and_code_change_the_key(tmp_path):
    cache = training_cache.TrainingCache(tmp_path)
    data = tmp_path / "train.jsonl"
    data.write_bytes(jsonl(rows(10)))
    plain, other = TfidfLogRegTrainer(), TfidfLogRegTrainer()
    other.C = 1.0  # an instance setting
    keys = {cache.key(t, {"seed": 0}, [], [data], []) for t in (plain, other)}
    keys.add(cache.key(plain, {"seed": 1}, [], [data], []))
    assert len(keys) == 3
    assert training_cache.trainer_recipe(other)["settings"] == {"C": 1.0}
    assert len(training_cache._code_digest()) == 64


def test_another_torch_version_changes_the_key(tmp_path, monkeypatch):
    cache = training_cache.TrainingCache(tmp_path)
    data = tmp_path / "train.jsonl"
    data.write_bytes(jsonl(rows(10)))
    trainer = TfidfLogRegTrainer()
    here = cache.key(trainer, {"seed": 0}, [], [data], [])
    assert training_cache.library_versions()["torch"] == torch.__version__
    colab = {**training_cache.library_versions(), "torch": "2.11.0+cpu"}
    monkeypatch.setattr(training_cache, "library_versions", lambda: colab)
    assert cache.key(trainer, {"seed": 0}, [], [data], []) != here


def test_a_broken_entry_is_a_miss_not_an_error(tmp_path):
    cache = training_cache.TrainingCache(tmp_path)
    (tmp_path / "abc").mkdir()
    (tmp_path / "abc" / training_cache.REPORTS).write_text("not json")
    assert cache.restore("abc", tmp_path / "out") is None
    assert cache.restore("missing", tmp_path / "out") is None
