"""The polling helper against the real local service (in-process) and SDK: every way a wait
can end."""

import json

import pytest

from helpers import training

GOOD = [
    {"text": f"{verb} the {thing} please", "labels": {"intent": intent}}
    for intent, verb in (("lights_on", "switch on"), ("lights_off", "switch off"))
    for thing in ("lamp", "light", "lights in the hall", "bedroom lamp", "kitchen light")
]


def upload(client, tmp_path, name, lines):
    path = tmp_path / name
    path.write_text(
        "".join(line if isinstance(line, str) else json.dumps(line) + "\n" for line in lines),
        encoding="utf-8",
    )
    with open(path, "rb") as f:
        return client.files.upload(file={"file_name": name, "content": f}).id


def create(client, file_id, **kwargs):
    return client.fine_tuning.jobs.create(
        model="tfidf-logreg",
        job_type="classifier",
        training_files=[{"file_id": file_id, "weight": 1}],
        hyperparameters={"training_steps": 5, "learning_rate": 1e-4},
        **kwargs,
    )


def test_success_returns_the_finished_job(client, tmp_path):
    job = create(client, upload(client, tmp_path, "train.jsonl", GOOD), auto_start=True)
    polled = []
    done = training.wait_for_job(
        client, job.id, "SUCCESS", timeout=120, progress=False, on_poll=polled.append
    )
    assert done.status == "SUCCESS" and done.fine_tuned_model.startswith("ft:classifier:")
    # on_poll saw every poll, the last one being the finished job
    assert polled and polled[-1].status == "SUCCESS" and polled[-1].id == job.id
    assert training.steps_done(polled[-1]) == 5
    record = training.job_record(done, "test")
    assert record["train_seconds"] is not None and record["train_seconds"] >= 0


def test_failed_validation_stops_with_the_line_number(client, tmp_path):
    file_id = upload(client, tmp_path, "broken.jsonl", [*GOOD, '{"text": "x", "labels": 3}\n'])
    job = create(client, file_id, auto_start=False)
    with pytest.raises(training.JobFailed, match=r"FAILED_VALIDATION: .*broken\.jsonl, line 11"):
        training.wait_for_job(client, job.id, "VALIDATED", timeout=60, progress=False)


def test_cancelled_job_stops_the_wait(client, tmp_path):
    job = create(client, upload(client, tmp_path, "train.jsonl", GOOD), auto_start=False)
    training.wait_for_job(client, job.id, "VALIDATED", timeout=60, progress=False)
    client.fine_tuning.jobs.cancel(job_id=job.id)
    with pytest.raises(training.JobFailed, match="ended CANCELLED"):
        training.wait_for_job(client, job.id, "SUCCESS", timeout=60, progress=False)


def test_timeout_when_the_job_never_gets_there(client, tmp_path):
    job = create(client, upload(client, tmp_path, "train.jsonl", GOOD), auto_start=False)
    training.wait_for_job(client, job.id, "VALIDATED", timeout=60, progress=False)
    with pytest.raises(training.JobTimeout, match="still VALIDATED after 2 s"):
        training.wait_for_job(
            client, job.id, "SUCCESS", timeout=2, poll_seconds=0.5, progress=False
        )


def test_unknown_status_is_rejected(client):
    with pytest.raises(ValueError, match="unknown status"):
        training.wait_for_job(client, "x", "DONE")


def test_refusal_explanations():
    class Refused(Exception):
        status_code = 410
        body = '{"detail": "Gone"}'

    assert 'backend = "local"' in training.explain_refusal(Refused(), "mistral")
    assert "410" in training.explain_refusal(Refused(), "local")


def test_job_device_reads_what_the_sdk_drops(live, tmp_path):
    from mistralai.client import Mistral

    url = live()
    client = Mistral(api_key="local", server_url=url)
    job = create(client, upload(client, tmp_path, "train.jsonl", GOOD), auto_start=False)
    assert not hasattr(job.metadata, "device")  # the SDK's JobMetadata has no such field
    training.wait_for_job(client, job.id, "VALIDATED", timeout=60, progress=False)
    assert training.job_device(url, job.id) == "cpu"  # the TF-IDF trainer only runs on CPU
