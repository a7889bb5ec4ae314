"""State survives the service: models, predictions and interrupted jobs after a restart."""

from __future__ import annotations

import signal
import socket
import time

import pytest
from factory_fixtures import TERMINAL, Server, intent_rows, train, upload, wait_for, write_jsonl

pytestmark = pytest.mark.slow  # real training or kernels: `make test`, not test-fast


def test_restart_keeps_models_and_predictions(tmp_path):
    data_dir = tmp_path / "factory"
    texts = ["wake me up at seven", "play some jazz", "is it cold outside", ""]
    first = Server(data_dir)
    try:
        client = first.client()
        train_id = upload(client, write_jsonl(tmp_path / "train.jsonl", intent_rows(45)))
        job = train(client, train_id, steps=15)
        before = client.classifiers.classify(model=job.fine_tuned_model, inputs=texts)
    finally:
        first.stop()

    second = Server(data_dir)
    try:
        client = second.client()
        assert job.fine_tuned_model in [m.id for m in client.models.list().data]
        again = client.fine_tuning.jobs.get(job_id=job.id)
        assert again.status == "SUCCESS" and again.events == job.events
        assert client.files.retrieve(file_id=train_id).filename == "train.jsonl"
        after = client.classifiers.classify(model=job.fine_tuned_model, inputs=texts)
        assert [r["intent"].scores for r in after.results] == [
            r["intent"].scores for r in before.results
        ]
    finally:
        second.stop()


def test_job_interrupted_by_a_restart_is_failed(tmp_path):
    data_dir = tmp_path / "factory"
    first = Server(data_dir)
    client = first.client()
    train_id = upload(client, write_jsonl(tmp_path / "train.jsonl", intent_rows(45)))
    job = client.fine_tuning.jobs.create(
        model="minilm-l6-v2",
        job_type="classifier",
        training_files=[{"file_id": train_id, "weight": 1}],
        hyperparameters={"training_steps": 5000, "learning_rate": 1e-4},
        auto_start=True,
    )
    assert wait_for(client, job.id, {"RUNNING"}).status == "RUNNING"
    queued = client.fine_tuning.jobs.create(
        model="tfidf-logreg",
        job_type="classifier",
        training_files=[{"file_id": train_id, "weight": 1}],
        hyperparameters={"training_steps": 5, "learning_rate": 1e-4},
        auto_start=True,
    )
    deadline = time.monotonic() + 60  # validated, then queued behind the running job
    while (
        client.fine_tuning.jobs.get(job_id=queued.id).events[-1].data != {"status": "QUEUED"}
        or len(client.fine_tuning.jobs.get(job_id=queued.id).events) < 4
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    first.stop(signal.SIGKILL)

    second = Server(data_dir)
    try:
        client = second.client()
        job = wait_for(client, job.id, TERMINAL, timeout=20)
        assert job.status == "FAILED"
        last = job.events[-1].data
        assert last == {
            "status": "FAILED",
            "error": "interrupted: the service restarted while this job was running",
        }
        assert not (data_dir / "models" / f".tmp-{job.id}").exists()
        # the job queued behind it never ran: it is trained now, not failed
        queued = wait_for(client, queued.id, TERMINAL, timeout=60)
        assert queued.status == "SUCCESS", queued.events
        # the queue still works after recovery
        assert train(client, train_id, steps=5).status == "SUCCESS"
    finally:
        second.stop()


def test_kill_during_an_upload_leaves_no_partial_file(tmp_path):
    data_dir = tmp_path / "factory"
    first = Server(data_dir)
    head = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="t.jsonl"\r\n'
        b"\r\n" + b'{"text": "hi", "labels": {"intent": "a"}}\n' * 1000
    )
    with socket.create_connection(("127.0.0.1", first.port)) as s:
        s.sendall(
            b"POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 10000000\r\n\r\n" + head
        )
        deadline = time.monotonic() + 30
        while not list((data_dir / "files").glob(".*.part")):
            assert time.monotonic() < deadline, "the upload never reached the disk"
            time.sleep(0.05)
        first.stop(signal.SIGKILL)
    second = Server(data_dir)
    try:
        deadline = time.monotonic() + 30
        while list((data_dir / "files").glob(".*.part")):
            assert time.monotonic() < deadline, "the partial upload was not removed"
            time.sleep(0.1)
        assert second.client().files.list().total == 0
    finally:
        second.stop()
