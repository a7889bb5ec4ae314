"""State survives the service: models, predictions and interrupted jobs after a restart."""

from __future__ import annotations

import signal

from factory_fixtures import TERMINAL, Server, intent_rows, train, upload, wait_for, write_jsonl


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
            r["intent"].scores for r in before.results]
    finally:
        second.stop()


def test_job_interrupted_by_a_restart_is_failed(tmp_path):
    data_dir = tmp_path / "factory"
    first = Server(data_dir)
    client = first.client()
    train_id = upload(client, write_jsonl(tmp_path / "train.jsonl", intent_rows(45)))
    job = client.fine_tuning.jobs.create(
        model="minilm-l6-v2", job_type="classifier",
        training_files=[{"file_id": train_id, "weight": 1}],
        hyperparameters={"training_steps": 5000, "learning_rate": 1e-4}, auto_start=True,
    )
    assert wait_for(client, job.id, {"RUNNING"}).status == "RUNNING"
    first.stop(signal.SIGKILL)

    second = Server(data_dir)
    try:
        client = second.client()
        job = wait_for(client, job.id, TERMINAL, timeout=20)
        assert job.status == "FAILED"
        last = job.events[-1].data
        assert last == {"status": "FAILED",
                        "error": "interrupted: the service restarted while this job was running"}
        assert not list((data_dir / "models").glob(".tmp-*"))
        # the queue still works after recovery
        assert train(client, train_id, steps=5).status == "SUCCESS"
    finally:
        second.stop()
