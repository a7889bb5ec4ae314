"""The factory's files, models and classification endpoints and their errors, via the real SDK
(in-process service; see test_factory_wire.py for the same over a socket)."""

from __future__ import annotations

import pytest
from factory_fixtures import intent_rows, train, upload, write_jsonl
from mistralai.client import errors

SERVICE_OPTIONS = {"max_upload_mb": 0.25}


@pytest.fixture(scope="module")
def trained(client, module_tmp):
    folder = module_tmp("api_data")
    train_id = upload(client, write_jsonl(folder / "train.jsonl", intent_rows(60)))
    return train(client, train_id)


def test_upload_list_retrieve_download_delete(client, tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", intent_rows(12))
    created = client.files.upload(file={"file_name": "train.jsonl", "content": open(path, "rb")})
    assert (created.filename, created.size_bytes, created.num_lines) == (
        "train.jsonl",
        path.stat().st_size,
        12,
    )
    assert created.purpose == "fine-tune" and created.object == "file"
    assert created.id in [f.id for f in client.files.list().data]
    assert client.files.list().total >= 1
    assert client.files.retrieve(file_id=created.id).deleted is False
    assert client.files.download(file_id=created.id).read() == path.read_bytes()
    deleted = client.files.delete(file_id=created.id)
    assert deleted.deleted and deleted.id == created.id
    with pytest.raises(errors.SDKError) as e:
        client.files.retrieve(file_id=created.id)
    assert e.value.status_code == 404


@pytest.mark.parametrize(
    "name, expected",
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\train.jsonl", "train.jsonl"),
        ("..", "upload.jsonl"),
        ("x" * 300 + ".jsonl", "x" * 194 + ".jsonl"),
    ],
)
def test_file_names_are_sanitized(client, name, expected):
    created = client.files.upload(file={"file_name": name, "content": b'{"a": 1}\n'})
    assert created.filename == expected


def test_control_characters_are_removed_from_file_names(server):
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; '
        b'filename="dir/ba\x01d\x7fna\x1bme.jsonl"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n{}\n\r\n--b--\r\n"
    )
    response = server.http.post(
        "/v1/files", content=body, headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["filename"] == "badname.jsonl"


def test_oversize_upload_is_413(server, client):
    big = b'{"text": "' + b"a" * (300 * 1024) + b'", "labels": {"intent": "x"}}\n'
    with pytest.raises(errors.SDKError) as e:
        client.files.upload(file={"file_name": "big.jsonl", "content": big})
    assert e.value.status_code == 413
    leftovers = [p for p in (server.data_dir / "files").iterdir() if p.name.endswith(".part")]
    assert leftovers == []


def test_upload_without_file_part_is_422_list_form(server):
    response = server.http.post(
        "/v1/files", data={"purpose": "fine-tune"}, files={"other": ("a.txt", b"x")}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "file"]


def test_unknown_ids_are_404(client):
    for call in (
        lambda: client.files.retrieve(file_id="nope"),
        lambda: client.fine_tuning.jobs.get(job_id="nope"),
        lambda: client.fine_tuning.jobs.start(job_id="nope"),
        lambda: client.models.retrieve(model_id="ft:classifier:nope:0:0:0"),
        lambda: client.models.delete(model_id="ft:classifier:nope:0:0:0"),
    ):
        with pytest.raises(errors.SDKError) as e:
            call()
        assert e.value.status_code == 404
    with pytest.raises(errors.SDKError) as e:
        client.fine_tuning.jobs.get(job_id="nope")
    assert "No fine tuning job matches the given query." in e.value.body
    with pytest.raises(errors.SDKError) as e:
        client.classifiers.classify(model="ft:classifier:missing:0:0:0", inputs=["hi"])
    assert e.value.status_code == 404


def test_ministral_is_refused_with_the_available_models(client, tmp_path):
    train_id = upload(client, write_jsonl(tmp_path / "t.jsonl", intent_rows(9)))
    with pytest.raises(errors.SDKError) as e:
        client.fine_tuning.jobs.create(
            model="ministral-3b-latest",
            job_type="classifier",
            training_files=[{"file_id": train_id, "weight": 1}],
            hyperparameters={"training_steps": 10, "learning_rate": 4e-5},
        )
    assert e.value.status_code == 422
    msg = e.value.body
    assert '"loc":["body","model"]' in msg
    assert "retired" in msg and "tfidf-logreg" in msg and "minilm-l6-v2" in msg


def test_create_with_missing_file_is_404_and_bad_body_is_422(server, client):
    with pytest.raises(errors.SDKError) as e:
        client.fine_tuning.jobs.create(
            model="tfidf-logreg",
            job_type="classifier",
            training_files=[{"file_id": "missing", "weight": 1}],
            hyperparameters={"training_steps": 10},
        )
    assert e.value.status_code == 404
    # bad bodies are 422 in list form: test_shape.py::test_bad_bodies_are_422_in_list_form
    response = server.http.post(
        "/v1/fine_tuning/jobs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422 and isinstance(response.json()["detail"], list)


def test_wandb_key_is_never_echoed(server, client, tmp_path):
    train_id = upload(client, write_jsonl(tmp_path / "t.jsonl", intent_rows(9)))
    key = "k" * 40
    job = client.fine_tuning.jobs.create(
        model="tfidf-logreg",
        job_type="classifier",
        training_files=[{"file_id": train_id, "weight": 1}],
        hyperparameters={"training_steps": 5},
        auto_start=False,
        integrations=[{"project": "intent-demo", "api_key": key}],
    )
    assert job.integrations[0].project == "intent-demo"
    client.fine_tuning.jobs.cancel(job_id=job.id)
    raw = server.http.get(f"/v1/fine_tuning/jobs/{job.id}").text
    bad = server.http.post(
        "/v1/fine_tuning/jobs",
        json={
            "model": "tfidf-logreg",
            "training_files": [{"file_id": train_id}],
            "integrations": [{"api_key": key}],
        },
    )
    assert bad.status_code == 422
    for text in (raw, bad.text, (server.data_dir / "server.log").read_text()):
        assert key not in text
    for db in server.data_dir.glob("factory.sqlite3*"):
        assert key.encode() not in db.read_bytes()


def test_models_list_retrieve_delete(client, trained):
    models = {m.id: m for m in client.models.list().data}
    assert {"tfidf-logreg", "minilm-l6-v2"} <= set(models)
    assert models["tfidf-logreg"].type == "base"
    assert models["tfidf-logreg"].capabilities.fine_tuning
    ft = models[trained.fine_tuned_model]
    assert ft.type == "fine-tuned" and ft.job == trained.id and ft.root == "tfidf-logreg"
    assert ft.capabilities.classification
    card = client.models.retrieve(model_id=trained.fine_tuned_model)
    assert card.id == trained.fine_tuned_model
    alias = client.models.retrieve(model_id="sentence-transformers/all-MiniLM-L6-v2")
    assert alias.id == "minilm-l6-v2"


def test_classify_single_label(client, trained):
    result = client.classifiers.classify(
        model=trained.fine_tuned_model, inputs=["play my jazz playlist", "", "rain forecast"]
    )
    assert len(result.results) == 3 and len(result.id) == 32
    for item in result.results:
        scores = item["intent"].scores
        assert set(scores) == {"alarm_set", "play_music", "weather_query"}
        assert sum(scores.values()) == pytest.approx(1.0, abs=1e-6)
    assert max(result.results[0]["intent"].scores.items(), key=lambda kv: kv[1])[0] == "play_music"
    one = client.classifiers.classify(model=trained.fine_tuned_model, inputs="wake me at seven")
    assert len(one.results) == 1


def test_classify_rejects_empty_list_and_base_models(client, trained):
    with pytest.raises(errors.HTTPValidationError):
        client.classifiers.classify(model=trained.fine_tuned_model, inputs=[])
    with pytest.raises(errors.HTTPValidationError) as e:
        client.classifiers.classify(model="tfidf-logreg", inputs=["hi"])
    assert "base model" in e.value.data.detail[0].msg


def test_delete_fine_tuned_model(client, tmp_path):
    train_id = upload(client, write_jsonl(tmp_path / "t.jsonl", intent_rows(15, seed=3)))
    job = train(client, train_id, steps=5)
    client.classifiers.classify(model=job.fine_tuned_model, inputs=["hi"])
    assert client.models.delete(model_id=job.fine_tuned_model).deleted
    assert job.fine_tuned_model not in [m.id for m in client.models.list().data]
    with pytest.raises(errors.SDKError) as e:
        client.classifiers.classify(model=job.fine_tuned_model, inputs=["hi"])
    assert e.value.status_code == 404
