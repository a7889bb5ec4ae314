"""Issue 14: limits, connections, host/origin/auth hardening, trustworthy state, requeue,
micro-batching. In-process (TestClient) where possible, a real uvicorn thread where the point
is the connection."""

from __future__ import annotations

import json
import socket
import sqlite3
import stat
import threading
import time

import httpx
import pytest
from inproc import TERMINAL, jsonl, rows, train, upload, wait

from helpers.factory.app import create_app
from helpers.factory.deps import Settings
from helpers.factory.limits import Limits
from helpers.factory.predictors import Batcher
from helpers.factory.store import StateError, Store


def create(api, file_id, **extra):
    body = {
        "model": "tfidf-logreg",
        "training_files": [{"file_id": file_id}],
        "hyperparameters": {"training_steps": 5},
        **extra,
    }
    return api.post("/v1/fine_tuning/jobs", json=body)


def validated(api, content: bytes) -> dict:
    """The job for ``content`` once validation has finished (VALIDATED or FAILED_VALIDATION)."""
    job = create(api, upload(api, content)).json()
    return wait(api, job["id"], {"VALIDATED"})


# -- limits -----------------------------------------------------------------------------------


def test_classification_over_the_character_limit_is_413(make_client):
    api = make_client(limits=Limits(max_request_chars=1000))
    model = train(api)["fine_tuned_model"]
    response = api.post("/v1/classifications", json={"model": model, "input": ["a" * 600] * 2})
    assert response.status_code == 413
    assert "1200 characters" in response.json()["detail"]
    assert (
        api.post("/v1/classifications", json={"model": model, "input": ["a" * 500] * 2}).status_code
        == 200
    )


def test_long_inputs_are_truncated_to_the_input_limit(make_client):
    api = make_client(limits=Limits(max_input_chars=20))
    model = train(api)["fine_tuned_model"]
    text = "play some jazz music " + "rain " * 500
    got = api.post("/v1/classifications", json={"model": model, "input": [text, text[:20]]})
    long, cut = got.json()["results"]
    assert long == cut


def test_body_over_the_limit_is_413_and_long_values_are_not_echoed(make_client):
    api = make_client(limits=Limits(max_body_bytes=10_000))
    response = api.post("/v1/classifications", json={"model": "m" * 20_000, "input": "x"})
    assert response.status_code == 413 and "limit is" in response.json()["detail"]
    response = api.post("/v1/classifications", json={"model": "m" * 5_000, "input": "x"})
    assert response.status_code == 422
    assert len(response.content) < 2_000 and "5000 characters" in response.text


def test_training_steps_over_the_limit_are_422(api):
    file_id = upload(api, jsonl(rows(30)))
    response = create(api, file_id, hyperparameters={"training_steps": 10**30})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "hyperparameters", "training_steps"]


def test_epochs_that_mean_too_many_steps_fail_validation(api):
    job = create(api, upload(api, jsonl(rows(30))), hyperparameters={"epochs": 10**6}).json()
    job = wait(api, job["id"], {"VALIDATED"})
    error = job["events"][-1]["data"]["error"]
    assert job["status"] == "FAILED_VALIDATION"
    assert "means 1000000 training steps" in error and "at most 100000" in error


def test_too_many_labels_fail_validation(make_client):
    api = make_client(limits=Limits(max_labels=2))
    job = validated(api, jsonl(rows(30)))
    assert job["status"] == "FAILED_VALIDATION"
    assert "has 3 labels" in job["events"][-1]["data"]["error"]


def test_jobs_this_machine_cannot_train_fail_validation_with_the_estimate(make_client):
    api = make_client(limits=Limits(max_train_memory_fraction=1e-9))
    job = validated(api, jsonl(rows(30)))
    error = job["events"][-1]["data"]["error"]
    assert job["status"] == "FAILED_VALIDATION"
    assert "needs about" in error and "features x 3 labels" in error


def test_texts_tfidf_cannot_use_are_refused_or_warned(api):
    emoji = [
        {"text": t, "labels": {"intent": lab}}
        for t, lab in (("😀", "a"), ("7", "b"), ("🎵", "a"), ("1", "b"))
    ]
    job = validated(api, jsonl(emoji))
    assert job["status"] == "FAILED_VALIDATION"
    assert "no training text has a word" in job["events"][-1]["data"]["error"]
    job = validated(api, jsonl(rows(30) + emoji[:1]))
    assert job["status"] == "VALIDATED"
    warnings = next(e["data"]["warnings"] for e in job["events"] if e["data"].get("warnings"))
    assert any("line 31: no word of two letters" in w for w in warnings)


def test_unencodable_text_fails_validation_naming_the_line(api):
    bad = jsonl(rows(6)) + b'{"text": "play \\ud800 jazz", "labels": {"intent": "play_music"}}\n'
    job = validated(api, bad)
    assert job["status"] == "FAILED_VALIDATION"
    assert "line 7, field 'text': unpaired surrogate" in job["events"][-1]["data"]["error"]


def test_conflicting_labels_and_duplicate_keys_are_warned(api):
    extra = (
        '{"text": "wake alarm set morning", "labels": {"intent": "play_music"}}\n'
        '{"text": "play song", "labels": {"intent": "a", "intent": "play_music"}}\n'
    )
    job = validated(api, jsonl(rows(30)) + extra.encode())
    assert job["status"] == "VALIDATED"
    warnings = "\n".join(
        next(e["data"]["warnings"] for e in job["events"] if e["data"].get("warnings"))
    )
    assert "line 31, field 'labels': warning: same text as train.jsonl line 1" in warnings
    assert "line 32, field 'intent': warning: duplicate key" in warnings


def test_malformed_numbers_and_pages_are_422(api):
    assert api.get("/v1/fine_tuning/jobs", params={"page": 10**20}).status_code == 422
    assert api.get("/v1/files", params={"page": "NaN"}).status_code == 422
    file_id = upload(api, jsonl(rows(30)))
    for raw in ('{"learning_rate": NaN}', '{"epochs": 1e309}', '{"epochs": Infinity}'):
        body = (
            f'{{"model": "tfidf-logreg", "training_files": [{{"file_id": "{file_id}"}}], '
            f'"hyperparameters": {raw}}}'
        )
        response = api.post(
            "/v1/fine_tuning/jobs", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 422, raw
    assert api.get("/v1/fine_tuning/jobs").json()["total"] == 0


def test_wandb_key_with_the_wrong_type_is_not_echoed(api):
    file_id = upload(api, jsonl(rows(30)))
    for integrations in (
        [{"project": "p", "api_key": 123456789012}],
        ["123456789012"],
        "123456789012",
    ):
        response = create(api, file_id, integrations=integrations)
        assert response.status_code == 422
        assert "123456789012" not in response.text


# -- connections --------------------------------------------------------------------------------


def test_a_500_does_not_drop_the_keep_alive_connection(live):
    def boom():
        raise RuntimeError("boom")

    url = live(extra_routes={"/boom": boom})
    with httpx.Client(base_url=url) as client:
        for _ in range(15):
            assert client.get("/boom").status_code == 500
            assert client.get("/health").status_code == 200


def test_a_stalled_body_gets_408(live):
    url = live(limits=Limits(body_timeout_s=0.5))
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            b"POST /v1/classifications HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"mo'
        )
        start = time.monotonic()
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - start < 5


@pytest.mark.parametrize("sent", [b"", b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slo"])
def test_stalled_request_headers_get_408(live, sent):
    """Issue 29: a connection that sent nothing, or part of its headers, was held open > 75 s."""
    url = live(limits=Limits(header_timeout_s=0.5))
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        start = time.monotonic()
        s.sendall(sent)
        answer = s.recv(4096)
        assert s.recv(4096) == b""  # then closed
    assert answer.startswith(b"HTTP/1.1 408") and b"did not arrive within 0.5 s" in answer
    assert time.monotonic() - start < 5


def test_a_slow_request_is_not_cut_once_its_headers_are_in(live):
    """The header timer stops at the end of the headers: what follows has its own limits."""
    url = live(limits=Limits(header_timeout_s=0.3, body_timeout_s=5))
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = s.recv(4096)
        time.sleep(0.8)  # idle between requests: uvicorn's 5 s keep-alive, not the 0.3 s
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        second = s.recv(4096)
    assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 200")


# -- host, origin, auth -------------------------------------------------------------------------


def test_host_header_allow_list(make_client):
    api = make_client()
    assert api.get("/health", headers={"host": "evil.example:8000"}).status_code == 400
    for host in ("127.0.0.1:8000", "localhost", "[::1]:8000"):
        assert api.get("/health", headers={"host": host}).status_code == 200, host
    other = make_client(
        data_dir=api.app.state.factory.settings.data_dir.parent / "b",
        allowed_hosts=("factory.lan",),
    )
    assert other.get("/health", headers={"host": "factory.lan:80"}).status_code == 200


def test_cross_origin_requests_are_refused(make_client, tmp_path):
    api = make_client(allowed_origins=("http://localhost:3000",))
    evil = {"origin": "http://evil.example"}
    assert (
        api.post("/v1/files", files={"file": ("a.jsonl", b"{}\n")}, headers=evil).status_code == 403
    )
    assert api.post("/v1/fine_tuning/jobs/x/start", headers=evil).status_code == 403
    assert api.get("/v1/models", headers={"sec-fetch-site": "cross-site"}).status_code == 403
    assert api.get("/v1/models", headers={"origin": "http://127.0.0.1"}).status_code == 200
    assert api.get("/v1/models", headers={"origin": "http://localhost:3000"}).status_code == 200
    form = api.post(
        "/v1/fine_tuning/jobs/x/cancel",
        content=b"a=1",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 415


def test_key_guards_health_docs_and_schema_and_non_ascii_tokens_are_401(make_client):
    api = make_client(api_key="s3cret")
    for path in ("/health", "/docs", "/openapi.json", "/v1/models"):
        assert api.get(path).status_code == 401, path
        assert api.get(path, headers={"authorization": "Bearer s3cret"}).status_code == 200
    token = "Bearer clé-ü".encode()
    assert api.get("/v1/models", headers={"authorization": token}).status_code == 401
    assert api.get("/health", headers={"authorization": token}).status_code == 401


def test_a_non_ascii_key_matches_when_sent_as_utf8(make_client):
    api = make_client(api_key="clé-ü")
    assert (
        api.get("/v1/models", headers={"authorization": "Bearer clé-ü".encode()}).status_code == 200
    )
    for wrong in ("Bearer clé".encode(), "Bearer clé-üü".encode(), b"Bearer s3cret"):
        assert api.get("/v1/models", headers={"authorization": wrong}).status_code == 401


def test_data_directory_and_files_are_owner_only(api):
    store = api.app.state.factory.store
    file_id = upload(api, jsonl(rows(30)))
    for path, mode in (
        (store.data_dir, 0o700),
        (store.files_dir, 0o700),
        (store.db_path, 0o600),
        (store.file_path(file_id), 0o600),
    ):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path


# -- state --------------------------------------------------------------------------------------


def test_corrupted_database_is_a_clear_error(tmp_path):
    data_dir = tmp_path / "factory"
    data_dir.mkdir()
    (data_dir / "factory.sqlite3").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match="cannot be read as a SQLite database"):
        create_app(Settings(data_dir=data_dir))


def test_lost_write_ahead_log_is_refused(tmp_path):
    data_dir = tmp_path / "factory"
    store = Store(data_dir)
    for i in range(3):
        store.add_file(
            {
                "id": f"f{i}",
                "filename": "a",
                "bytes": 1,
                "created_at": 0,
                "sample_type": "instruct",
                "source": "upload",
            }
        )
    # a copy of the main file alone, as if the -wal file had been deleted
    backup = sqlite3.connect(tmp_path / "copy.sqlite3")
    raw = (data_dir / "factory.sqlite3").read_bytes()
    backup.close()
    store._db.close()
    for suffix in ("-wal", "-shm"):
        (data_dir / f"factory.sqlite3{suffix}").unlink(missing_ok=True)
    (data_dir / "factory.sqlite3").write_bytes(raw)
    with pytest.raises(StateError, match="write-ahead log"):
        Store(data_dir).check()


def test_a_copy_without_its_log_and_state_gen_starts_with_a_warning(tmp_path):
    """Issue 29: such a copy may have lost writes and nothing can tell; it said nothing."""
    data_dir = tmp_path / "factory"
    store = Store(data_dir)
    store.add_file(
        {
            "id": "f0",
            "filename": "a",
            "bytes": 1,
            "created_at": 0,
            "sample_type": "instruct",
            "source": "upload",
        }
    )
    assert not any("state.gen" in w for w in store.check())  # the original is fine
    store.close()
    (data_dir / "state.gen").unlink()
    warnings = Store(data_dir).check()
    assert any(
        "state.gen is missing although" in w and "records 1 writes" in w and "-wal" in w
        for w in warnings
    ), warnings
    assert not any("state.gen" in w for w in Store(tmp_path / "new").check())  # a fresh folder


def test_emptied_database_with_models_on_disk_is_refused(make_client, tmp_path):
    api = make_client()
    train(api)
    data_dir = api.app.state.factory.settings.data_dir
    api.__exit__(None, None, None)
    for path in data_dir.glob("factory.sqlite3*"):
        path.unlink()
    (data_dir / "state.gen").unlink()
    with pytest.raises(StateError, match="is missing, but this data directory was used"):
        create_app(Settings(data_dir=data_dir))


def test_database_emptied_in_place_with_data_on_disk_is_refused(make_client):
    api = make_client()
    train(api)
    data_dir = api.app.state.factory.settings.data_dir
    api.__exit__(None, None, None)
    db = sqlite3.connect(data_dir / "factory.sqlite3")
    with db:
        for table in ("models", "jobs", "files"):
            db.execute(f"DELETE FROM {table}")
    db.close()
    with pytest.raises(StateError, match="has no files and no jobs, but"):
        create_app(Settings(data_dir=data_dir))


def test_missing_and_orphan_model_folders_are_warned_at_start_up(make_client, caplog):
    import shutil

    api = make_client()
    model_id = train(api)["fine_tuned_model"]
    store = api.app.state.factory.store
    folder = store.model_dir(store.get_model(model_id))
    data_dir = api.app.state.factory.settings.data_dir
    api.__exit__(None, None, None)
    shutil.rmtree(folder)
    (data_dir / "models" / "stray-folder").mkdir()
    with caplog.at_level("WARNING"):
        create_app(Settings(data_dir=data_dir))
    assert f"model {model_id}: its folder" in caplog.text and "is missing" in caplog.text
    assert "stray-folder belongs to no model in the database" in caplog.text


def test_unencodable_request_text_is_422_naming_the_input(api):
    model = train(api)["fine_tuned_model"]
    body = json.dumps({"model": model, "input": ["play jazz", "a\ud800b"]})
    response = api.post(
        "/v1/classifications", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["body", "input", 1] and "unpaired surrogate" in detail["msg"]


def test_a_model_folder_deleted_by_hand_is_410_and_unloaded(api):
    import shutil

    model = train(api)["fine_tuned_model"]
    assert api.post("/v1/classifications", json={"model": model, "input": "x"}).status_code == 200
    factory = api.app.state.factory
    shutil.rmtree(factory.store.model_dir(factory.store.get_model(model)))
    response = api.post("/v1/classifications", json={"model": model, "input": "x"})
    assert response.status_code == 410 and "deleted outside the service" in response.text
    assert model not in factory.predictors._entries
    assert api.get(f"/v1/models/{model}").status_code == 410
    assert model not in [m["id"] for m in api.get("/v1/models").json()["data"]]
    assert api.delete(f"/v1/models/{model}").status_code == 200
    assert api.get(f"/v1/models/{model}").status_code == 404


def test_queued_jobs_go_back_to_the_queue_after_a_restart(make_client, tmp_path):
    data_dir = tmp_path / "factory"
    store = Store(data_dir)
    path = store.file_path("train")
    path.write_bytes(jsonl(rows(30)))
    store.add_file(
        {
            "id": "train",
            "filename": "train.jsonl",
            "bytes": path.stat().st_size,
            "created_at": 0,
            "sample_type": "instruct",
            "source": "upload",
        }
    )
    api = make_client(data_dir=data_dir)
    api.__exit__(None, None, None)  # stop the worker; now fake what a killed process leaves
    hp = {"training_steps": 5, "learning_rate": 1e-4, "weight_decay": 0.1, "warmup_fraction": 0.05}
    queued = store.create_job(
        {
            "model": "tfidf-logreg",
            "auto_start": 1,
            "training_files": ["train"],
            "hyperparameters": hp,
            "metadata": {},
        }
    )
    validating = store.create_job(
        {
            "model": "tfidf-logreg",
            "auto_start": 1,
            "training_files": ["train"],
            "hyperparameters": hp,
            "metadata": {},
        }
    )
    store.transition(queued.id, ["QUEUED"], "VALIDATING")
    store.transition(
        queued.id,
        ["VALIDATING"],
        "VALIDATED",
        classifier_targets=[
            {
                "name": "intent",
                "labels": sorted({r["labels"]["intent"] for r in rows(3)}),
                "weight": 1.0,
                "loss_function": "single_class",
            }
        ],
    )
    store.transition(queued.id, ["VALIDATED"], "QUEUED", started=1)
    store.transition(validating.id, ["QUEUED"], "VALIDATING")
    store._db.close()
    api = make_client(data_dir=data_dir)
    for job_id in (queued.id, validating.id):
        job = wait(api, job_id, TERMINAL)
        assert job["status"] == "SUCCESS", job["events"]
        assert not any("error" in e["data"] for e in job["events"])


def test_incomplete_multipart_is_rejected_and_stale_partials_are_removed(make_client, tmp_path):
    data_dir = tmp_path / "factory"
    (data_dir / "files").mkdir(parents=True)
    stale = data_dir / "files" / ".999999999-x.part"
    stale.write_bytes(b"half")
    api = make_client()
    wait_until = time.monotonic() + 10
    while stale.exists() and time.monotonic() < wait_until:
        time.sleep(0.05)
    assert not stale.exists()
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n'
        b'\r\n{"text": "hi"}\n'
    )
    response = api.post(
        "/v1/files", content=body, headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert response.status_code == 422 and "closing boundary" in response.text
    assert api.get("/v1/files").json()["total"] == 0
    assert not list((data_dir / "files").glob(".*.part"))


# -- micro-batching -----------------------------------------------------------------------------


def test_concurrent_requests_share_one_forward_pass(api):
    factory = api.app.state.factory
    model = factory.store.get_model(train(api)["fine_tuned_model"])
    predictor = factory.predictors.get(model).predictor
    calls: list[int] = []

    class Counting:  # the real predictor, counting the texts of each forward pass
        def predict(self, texts):
            calls.append(len(texts))
            return predictor.predict(texts)

    batcher = Batcher(
        Counting(), factory.store.model_dir(model), max_batch=64, max_wait_s=0.5, gap_s=0.5
    )
    texts = [f"play some jazz {i}" for i in range(20)]
    futures = [batcher.submit([t]) for t in texts]
    results = [f.result(timeout=10)[0] for f in futures]
    batcher.close()
    assert calls == [20]
    assert results == predictor.predict(texts)


def test_concurrent_http_clients_get_their_own_answers(api):
    model = train(api)["fine_tuned_model"]
    texts = ["play jazz", "wake me at seven", "rain forecast"] * 8
    out: dict[int, dict] = {}

    def call(i):
        out[i] = api.post("/v1/classifications", json={"model": model, "input": texts[i]}).json()

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    alone = api.post("/v1/classifications", json={"model": model, "input": texts}).json()
    for i in range(len(texts)):
        got, expected = out[i]["results"][0]["intent"], alone["results"][i]["intent"]
        assert got["scores"] == pytest.approx(expected["scores"], abs=1e-12)


def test_a_lone_request_starts_at_once_and_a_burst_joins_one_pass(api):
    """A request alone (the previous pass served one request) starts its pass at once; after
    that, a burst that keeps arriving within ``gap_s`` joins one pass (up to ``max_wait_s``), and
    while clients arrive together the next pass waits for the gap again."""
    factory = api.app.state.factory
    model = factory.store.get_model(train(api)["fine_tuned_model"])
    predictor = factory.predictors.get(model).predictor
    calls: list[int] = []
    release = threading.Event()
    release.set()

    class Counting:
        def predict(self, texts):
            calls.append(len(texts))
            release.wait(30)
            return predictor.predict(texts)

    batcher = Batcher(
        Counting(), factory.store.model_dir(model), max_batch=64, max_wait_s=5.0, gap_s=1.0
    )
    try:
        start = time.monotonic()
        batcher.predict(["play some jazz"])
        lone = time.monotonic() - start
        assert lone < 1.0, f"a lone request waited {lone:.2f} s: the gap, or the 5 s window"
        release.clear()
        first = batcher.submit(["wake me at six"])  # alone: its pass starts and blocks
        while calls != [1, 1]:
            time.sleep(0.01)
        burst = []
        for i in range(4):  # arrivals 50 ms apart (within the 1 s gap) while the model is busy
            burst.append(batcher.submit([f"wake me at {i}"]))
            time.sleep(0.05)
        release.set()
        first.result(timeout=30)
        [f.result(timeout=30) for f in burst]
        assert calls == [1, 1, 4]
        start = time.monotonic()
        batcher.predict(["rain forecast"])  # after a shared pass: waits for the gap
        assert time.monotonic() - start >= 1.0
        assert calls == [1, 1, 4, 1]
    finally:
        release.set()
        batcher.close()


def test_the_model_lives_on_the_batcher_thread(api):
    """The batcher's thread loads the model and runs its passes and calls (PyTorch on CPU is
    slower when a model loaded on one thread runs on another); a failed load is raised."""
    factory = api.app.state.factory
    model = factory.store.get_model(train(api)["fine_tuned_model"])
    model_dir = factory.store.model_dir(model)
    real = factory.registry.get(model.root).load(model_dir)
    threads: list[int | None] = []

    class Recording:
        def predict(self, texts):
            threads.append(threading.get_ident())
            return real.predict(texts)

    def load():
        threads.append(threading.get_ident())
        return Recording()

    batcher = Batcher(load, model_dir)
    try:
        assert batcher.predict(["play jazz"]) == real.predict(["play jazz"])
        threads.append(batcher.call(threading.get_ident))
        assert threads == [batcher._thread.ident] * 3
        assert batcher._thread.ident != threading.get_ident()
    finally:
        batcher.close()

    def broken():
        raise FileNotFoundError("model.safetensors")

    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        Batcher(broken, model_dir)


def test_more_than_20_warnings_say_how_many_more(api):
    # 25 texts that repeat an earlier line with another label: 25 warnings
    clashes = [{"text": r["text"], "labels": {"intent": "other"}} for r in rows(25)]
    job = validated(api, jsonl(rows(30) + clashes))
    assert job["status"] == "VALIDATED"
    warnings = next(e["data"]["warnings"] for e in job["events"] if e["data"].get("warnings"))
    assert len(warnings) == 21 and warnings[-1].startswith("... and ")
    assert warnings[-1].endswith("more warnings")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"validation_files": ["V", "V"]}, "is listed 2 times"),
        ({"training_files": [{"file_id": "T"}] * 100}, "is listed 100 times"),
        (
            {"classifier_targets": [{"name": "intent", "labels": []}] * 2},
            "classifier target 'intent' is given 2 times",
        ),
    ],
)
def test_repeated_files_and_targets_are_refused(api, extra, message):
    file_id = upload(api, jsonl(rows(30)))
    body = json.loads(
        json.dumps(extra).replace('"T"', f'"{file_id}"').replace('"V"', f'"{file_id}"')
    )
    response = create(api, file_id, **body)
    assert response.status_code == 422 and message in response.text, response.text


def test_a_model_unloaded_between_lookup_and_turn_is_loaded_again(api):
    """The LRU may evict a model after a request found it and before its turn: the request
    loads it again instead of answering 409 (which the SDK does not retry)."""
    model = train(api)["fine_tuned_model"]
    texts = ["wake alarm set morning", "play song music"]
    first = api.post("/v1/classifications", json={"model": model, "input": texts})
    assert first.status_code == 200
    factory = api.app.state.factory
    loaded = factory.predictors.peek(model)
    loaded.close()  # what eviction does ...
    real_peek = factory.predictors.peek
    factory.predictors.peek = lambda model_id: loaded  # ... right after the lookup found it
    try:
        again = api.post("/v1/classifications", json={"model": model, "input": texts})
    finally:
        factory.predictors.peek = real_peek
    assert again.status_code == 200, again.text
    assert again.json()["results"] == first.json()["results"]
    assert factory.predictors.peek(model) is not loaded
