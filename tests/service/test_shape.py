"""Status codes and error shapes of the in-process service, and the job life-cycle rules."""

from __future__ import annotations

import pytest
from inproc import jsonl, rows, train, upload, wait

from helpers.factory.job_states import TRANSITIONS, check_transition
from helpers.factory.store import FileRow, JobRow, ModelRow, Store


def test_unknown_ids_are_404_with_the_sdk_messages(api):
    for method, path, message in (
        ("get", "/v1/files/nope", "No file matches the given query."),
        ("delete", "/v1/files/nope", "No file matches the given query."),
        ("get", "/v1/files/nope/content", "No file matches the given query."),
        ("get", "/v1/fine_tuning/jobs/nope", "No fine tuning job matches the given query."),
        ("post", "/v1/fine_tuning/jobs/nope/start", "No fine tuning job matches the given query."),
        ("post", "/v1/fine_tuning/jobs/nope/cancel", "No fine tuning job matches the given query."),
        ("get", "/v1/models/ft:classifier:x:0:0:0", "No model matches the given query."),
        ("delete", "/v1/models/ft:classifier:x:0:0:0", "No model matches the given query."),
    ):
        response = api.request(method, path)
        assert (response.status_code, response.json()) == (404, {"detail": message}), path


def test_bad_bodies_are_422_in_list_form(api):
    for body in (
        {"model": "tfidf-logreg", "training_files": []},
        {
            "model": "tfidf-logreg",
            "hyperparameters": {"training_steps": 0},
            "training_files": [{"file_id": "x"}],
        },
        {"training_files": [{"file_id": "x"}]},
        {"model": "nope", "training_files": [{"file_id": "x"}]},
    ):
        response = api.post("/v1/fine_tuning/jobs", json=body)
        assert response.status_code == 422, body
        detail = response.json()["detail"]
        assert isinstance(detail, list) and {"loc", "msg", "type"} <= set(detail[0])


def test_base_models_cannot_be_deleted_or_used_to_classify(api):
    assert api.delete("/v1/models/tfidf-logreg").status_code == 400
    response = api.post("/v1/classifications", json={"model": "tfidf-logreg", "input": "hi"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "model"]


def test_start_twice_is_409_and_cancel_is_idempotent(api):
    file_id = upload(api, jsonl(rows(30)))
    job = api.post(
        "/v1/fine_tuning/jobs",
        json={
            "model": "tfidf-logreg",
            "training_files": [{"file_id": file_id}],
            "hyperparameters": {"training_steps": 5},
        },
    ).json()
    assert wait(api, job["id"], {"VALIDATED"})["status"] == "VALIDATED"
    assert api.post(f"/v1/fine_tuning/jobs/{job['id']}/start").status_code == 200
    second = api.post(f"/v1/fine_tuning/jobs/{job['id']}/start")
    assert second.status_code == 409 and "only VALIDATED jobs" in second.json()["detail"]
    done = wait(api, job["id"], set())
    cancelled = api.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == done["status"]


def test_cancel_a_validated_job(api):
    file_id = upload(api, jsonl(rows(30)))
    job = api.post(
        "/v1/fine_tuning/jobs",
        json={"model": "tfidf-logreg", "training_files": [{"file_id": file_id}]},
    ).json()
    wait(api, job["id"], {"VALIDATED"})
    out = api.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel").json()
    assert out["status"] == "CANCELLED"
    assert api.post(f"/v1/fine_tuning/jobs/{job['id']}/start").status_code == 409


def test_train_and_classify_in_process(api):
    job = train(api)
    model = job["fine_tuned_model"]
    response = api.post("/v1/classifications", json={"model": model, "input": ["play jazz", ""]})
    assert response.status_code == 200
    scores = response.json()["results"][0]["intent"]["scores"]
    assert max(scores, key=scores.get) == "play_music"
    assert api.delete(f"/v1/models/{model}").json()["deleted"] is True
    assert api.post("/v1/classifications", json={"model": model, "input": "x"}).status_code == 404


def test_auth_with_a_key(make_client):
    api = make_client(api_key="s3cret")
    assert api.get("/v1/models").status_code == 401
    assert api.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    response = api.get("/v1/models", headers={"Authorization": "Bearer s3cret"})
    assert response.status_code == 200


def test_store_returns_typed_rows(api):
    store: Store = api.app.state.factory.store
    train(api)
    (job,) = store.list_jobs(0, 10, None, None, None, None, None)[0]
    assert isinstance(job, JobRow) and job.auto_start is True and job.started is True
    assert isinstance(store.get_file(job.training_files[0]), FileRow)
    (model,) = store.list_models()
    assert isinstance(model, ModelRow) and model.job_id == job.id
    with pytest.raises(AttributeError):
        job.status = "FAILED"  # rows are immutable snapshots


def test_transition_rules_refuse_moves_outside_the_life_cycle(api):
    with pytest.raises(ValueError, match="SUCCESS to RUNNING"):
        check_transition(["SUCCESS"], "RUNNING")
    check_transition(["RUNNING"], "CANCELLATION_REQUESTED")
    store: Store = api.app.state.factory.store
    job = train(api)
    with pytest.raises(ValueError):
        store.transition(job["id"], ["SUCCESS"], "QUEUED")
    assert all(not TRANSITIONS[s] for s in ("SUCCESS", "FAILED", "CANCELLED"))
