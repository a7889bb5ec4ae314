"""Fine-tuning jobs through the real SDK (in-process service): the seed's sequence and every
lifecycle branch."""

from __future__ import annotations

import random
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from factory_fixtures import (
    TERMINAL,
    VOCAB,
    Server,
    intent_rows,
    train,
    upload,
    wait_for,
    write_jsonl,
)
from mistralai.client import errors

from helpers.factory.trainers.tfidf import TfidfLogRegTrainer

FT_ID = re.compile(r"^ft:classifier:(?P<base>[a-z0-9-]+):[0-9a-f]{8}:\d{8}:(?P<job>[0-9a-f]{8})$")


@pytest.fixture(scope="module")
def files(client, module_tmp):
    folder = module_tmp("jobs_data")
    train_id = upload(client, write_jsonl(folder / "train.jsonl", intent_rows(90)))
    valid_id = upload(client, write_jsonl(folder / "valid.jsonl", intent_rows(15, seed=1)))
    return train_id, valid_id


def statuses(job) -> list[str]:
    return [e.data["status"] for e in job.events]


def create(client, train_id, model="tfidf-logreg", steps=10, **kwargs):
    return client.fine_tuning.jobs.create(
        model=model,
        job_type="classifier",
        training_files=[{"file_id": train_id, "weight": 1}],
        hyperparameters={"training_steps": steps, "learning_rate": 1e-4},
        **kwargs,
    )


def test_seed_sequence_tfidf(client, files):
    train_id, valid_id = files
    created = create(client, train_id, steps=20, validation_files=[valid_id], auto_start=False)
    assert created.status == "QUEUED" and created.job_type == "classifier"
    # unset hyperparameters come back as the trainer's declared defaults (L-BFGS ignores both)
    defaults = TfidfLogRegTrainer.defaults
    assert created.hyperparameters.weight_decay == defaults.weight_decay == 0.0
    assert created.hyperparameters.warmup_fraction == defaults.warmup_fraction == 0.0
    job = train(client, train_id, valid_id, steps=20)
    assert statuses(job) == ["QUEUED", "VALIDATING", "VALIDATED", "QUEUED", "RUNNING", "SUCCESS"]
    assert all(e.name == "status-updated" for e in job.events)
    match = FT_ID.match(job.fine_tuned_model)
    assert match and match["base"] == "tfidf-logreg" and job.id.startswith(match["job"])
    target = job.classifier_targets[0]
    assert (target.name, target.labels, target.loss_function) == (
        "intent",
        sorted(VOCAB),
        "single_class",
    )
    assert job.hyperparameters.epochs == 20  # full batch: one step is one epoch
    meta = job.metadata
    assert meta.cost == 0.0 and meta.cost_currency == "EUR" and meta.data_tokens == 360
    assert meta.train_tokens == meta.train_tokens_per_step * 20 and job.trained_tokens > 0
    steps = [c.step_number for c in job.checkpoints]
    assert steps == sorted(steps, reverse=True)
    assert 10 < steps[0] <= 20  # L-BFGS may converge before the step cap
    final = job.checkpoints[0].metrics
    assert final.valid_loss is not None and final.valid_mean_token_accuracy == 1.0
    result = client.classifiers.classify(
        model=job.fine_tuned_model, inputs=["set an alarm for seven", "will it rain"]
    )
    best = [max(r["intent"].scores, key=r["intent"].scores.get) for r in result.results]
    assert best == ["alarm_set", "weather_query"]

    listed = client.fine_tuning.jobs.list(status="SUCCESS", model="tfidf-logreg", page_size=50)
    assert job.id in [j.id for j in listed.data] and listed.total >= 1
    assert all(j.status == "SUCCESS" for j in listed.data)


def test_auto_start_without_validation_file(client, files):
    job = create(client, files[0], steps=10, auto_start=True)
    job = wait_for(client, job.id, TERMINAL)
    assert job.status == "SUCCESS"
    assert "VALIDATED" in statuses(job) and "STARTED" not in statuses(job)
    steps = [c.step_number for c in job.checkpoints]
    assert steps == sorted(set(steps), reverse=True) and steps[-1] == 1  # every 10% of steps
    assert all(c.metrics.model_dump().get("valid_loss") is None for c in job.checkpoints)


def test_failed_validation_names_file_line_and_field(client, tmp_path):
    rows = intent_rows(9)
    rows[2] = {"text": "wake me", "labels": ["alarm_set"]}
    train_id = upload(client, write_jsonl(tmp_path / "train.jsonl", rows))
    job = create(client, train_id)
    job = wait_for(client, job.id, {"FAILED_VALIDATION"})
    assert job.status == "FAILED_VALIDATION"
    error = job.events[-1].data["error"]
    assert "train.jsonl, line 3, field 'labels': must be an object, got list" in error
    with pytest.raises(errors.SDKError) as e:
        client.fine_tuning.jobs.start(job_id=job.id)
    assert e.value.status_code == 409


def test_cancel_validated_job_then_start_is_409(client, files):
    job = create(client, files[0], auto_start=False)
    job = wait_for(client, job.id, {"VALIDATED"})
    cancelled = client.fine_tuning.jobs.cancel(job_id=job.id)
    assert cancelled.status == "CANCELLED" and statuses(cancelled)[-1] == "CANCELLED"
    with pytest.raises(errors.SDKError) as e:
        client.fine_tuning.jobs.start(job_id=job.id)
    assert e.value.status_code == 409 and "VALIDATED" in e.value.body
    again = client.fine_tuning.jobs.cancel(job_id=job.id)  # terminal: unchanged
    assert again.status == "CANCELLED" and again.modified_at == cancelled.modified_at


def test_start_twice_is_409(client, files):
    job = train(client, files[0], steps=3)
    with pytest.raises(errors.SDKError) as e:
        client.fine_tuning.jobs.start(job_id=job.id)
    assert e.value.status_code == 409


def test_multi_target_and_multi_label(client, tmp_path):
    rng = random.Random(7)
    topics = ["alarm_set", "play_music", "weather_query"]
    rows = []
    for i in range(90):
        chosen = sorted(rng.sample(topics, 1 + i % 2))
        words = [w for t in chosen for w in rng.sample(VOCAB[t], 2)]
        rows.append(
            {
                "text": " ".join(words),
                "labels": {"topics": chosen, "mood": ["calm", "urgent"][i % 2]},
            }
        )
    train_id = upload(client, write_jsonl(tmp_path / "multi.jsonl", rows))
    job = train(client, train_id, steps=30)
    targets = {t.name: t for t in job.classifier_targets}
    assert targets["topics"].loss_function == "multi_class"
    assert targets["mood"].loss_function == "single_class"
    result = client.classifiers.classify(
        model=job.fine_tuned_model, inputs=["play jazz rain umbrella", "wake alarm"]
    )
    for item in result.results:
        assert set(item) == {"topics", "mood"}
        assert set(item["topics"].scores) == set(topics)
        assert set(item["mood"].scores) == {"calm", "urgent"}
        assert sum(item["mood"].scores.values()) == pytest.approx(1.0, abs=1e-6)
    first = result.results[0]["topics"].scores
    assert first["play_music"] > 0.5 and first["weather_query"] > 0.5 and first["alarm_set"] < 0.5


def test_concurrent_classification(client, files):
    job = train(client, files[0], steps=10)

    def classify(i: int):
        texts = [f"play song {i} {j}" for j in range(16)]
        result = client.classifiers.classify(model=job.fine_tuned_model, inputs=texts)
        return len(result.results)

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(classify, range(32))) == [16] * 32


@pytest.mark.slow
def test_seed_sequence_encoder(client, files):
    train_id, valid_id = files
    job = train(client, train_id, valid_id, model="minilm-l6-v2", steps=6, timeout=300)
    assert FT_ID.match(job.fine_tuned_model)["base"] == "minilm-l6-v2"
    assert job.hyperparameters.seq_len and job.checkpoints[0].step_number == 6
    assert job.checkpoints[0].metrics.valid_loss is not None
    result = client.classifiers.classify(
        model=job.fine_tuned_model, inputs=["play my jazz album", "umbrella rain forecast"]
    )
    for item in result.results:
        assert sum(item["intent"].scores.values()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow  # trains the encoder
def test_cancel_running_job_within_seconds(client, files):
    job = create(client, files[0], model="minilm-l6-v2", steps=5000, auto_start=True)
    job = wait_for(client, job.id, {"RUNNING"})
    assert job.status == "RUNNING"
    asked = time.monotonic()
    requested = client.fine_tuning.jobs.cancel(job_id=job.id)
    assert requested.status in {"CANCELLATION_REQUESTED", "CANCELLED"}
    job = wait_for(client, job.id, {"CANCELLED"}, timeout=30)
    assert job.status == "CANCELLED" and time.monotonic() - asked < 15
    assert statuses(job)[-2:] == ["CANCELLATION_REQUESTED", "CANCELLED"]
    assert job.fine_tuned_model is None


@pytest.mark.slow  # starts a second service process
def test_a_second_process_shares_the_data_dir(server, client, files):
    second = Server(server.data_dir)
    try:
        assert second.health()["worker"] is False  # the first process owns the worker
        other = second.client()
        job = create(other, files[0], steps=5, auto_start=True)
        job = wait_for(other, job.id, TERMINAL)
        assert job.status == "SUCCESS"
        assert client.fine_tuning.jobs.get(job_id=job.id).fine_tuned_model == job.fine_tuned_model
        assert other.classifiers.classify(model=job.fine_tuned_model, inputs=["hi"]).results
    finally:
        second.stop()
