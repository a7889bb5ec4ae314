"""``POST /v1/embeddings`` through the real ``mistralai`` SDK against a real local service."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from factory_fixtures import Server, intent_rows, train, upload, write_jsonl  # noqa: E402
from mistralai.client import errors  # noqa: E402

from helpers.factory.schemas import MAX_EMBED_INPUTS  # noqa: E402

TEXTS = [
    "set an alarm for seven tomorrow",
    "wake me up at 7 am",
    "play some jazz music",
    "what's the weather in paris",
]


@pytest.fixture(scope="module")
def server(module_tmp):
    server = Server(module_tmp("embeddings"), "--max-request-chars", "20000")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server):
    return server.client()


@pytest.fixture(scope="module")
def files(client, module_tmp):
    folder = module_tmp("embedding_data")
    return (
        upload(client, write_jsonl(folder / "train.jsonl", intent_rows(60))),
        upload(client, write_jsonl(folder / "valid.jsonl", intent_rows(12, seed=1))),
    )


@pytest.fixture(scope="module")
def encoder_job(client, files):
    return train(client, *files, model="minilm-l6-v2", steps=3, timeout=300)


def vectors(response) -> np.ndarray:
    assert [d.index for d in response.data] == list(range(len(response.data)))
    assert all(d.object == "embedding" for d in response.data)
    return np.array([d.embedding for d in response.data])


def reference_embeddings(texts) -> np.ndarray:
    """all-MiniLM-L6-v2 in float32 with sentence-transformers' mean pooling, computed here."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from helpers.factory.trainers.models import DEFAULT_ENCODER, resolve_encoder

    path = str(resolve_encoder(DEFAULT_ENCODER))
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)
    batch = tokenizer(
        list(texts), padding=True, truncation=True, max_length=64, return_tensors="pt"
    )
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    m = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * m).sum(1) / m.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


@pytest.mark.slow  # loads the encoder
def test_base_encoder_batch_is_mean_pooled_and_normalised(client):
    response = client.embeddings.create(model="minilm-l6-v2", inputs=TEXTS)
    assert response.model == "minilm-l6-v2" and response.object == "list"
    x = vectors(response)
    assert x.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    # bf16 inference on some CPUs: agree with float32 to about 1e-2
    np.testing.assert_allclose(x, reference_embeddings(TEXTS), atol=3e-2)
    sims = x @ x.T
    assert sims[0, 1] > sims[0, 2] and sims[0, 1] > sims[0, 3]  # the two alarm requests
    assert response.usage.prompt_tokens == response.usage.total_tokens > 4 * 3


@pytest.mark.slow  # loads or trains an encoder
def test_single_string_alias_and_determinism(client):
    one = vectors(client.embeddings.create(model="minilm-l6-v2", inputs=TEXTS[2]))
    alias = vectors(
        client.embeddings.create(model="sentence-transformers/all-MiniLM-L6-v2", inputs=[TEXTS[2]])
    )
    batch = vectors(client.embeddings.create(model="minilm-l6-v2", inputs=TEXTS))
    assert one.shape == (1, 384)
    np.testing.assert_array_equal(one, alias)
    np.testing.assert_allclose(one[0], batch[2], atol=1e-2)  # batch padding may differ (bf16)


@pytest.mark.slow  # loads or trains an encoder
def test_fine_tuned_encoder_embeddings_are_what_its_heads_read(client, server, encoder_job):
    from helpers.factory.trainers.encoder import EncoderPredictor

    model = encoder_job.fine_tuned_model
    tuned = vectors(client.embeddings.create(model=model, inputs=TEXTS))
    base = vectors(client.embeddings.create(model="minilm-l6-v2", inputs=TEXTS))
    assert tuned.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(tuned, axis=1), 1.0, atol=1e-5)
    assert np.abs(tuned - base).max() > 1e-3  # the top layers were fine-tuned
    # softmax(head(embedding)) reproduces the classification endpoint's scores (the default
    # recipe is the plain one: no votes of the nearest training texts)
    folder = next(p for p in (server.data_dir / "models").rglob("classifier.json")).parent
    assert list((folder / "serving").glob("encoder-*.onnx"))  # the service runs it through ONNX
    meta = json.loads((folder / "classifier.json").read_text())
    assert meta["votes"] is None and meta["recipe"]["name"] == "plain"
    predictor = EncoderPredictor.load(folder)
    head = predictor.heads[0]
    logits = tuned @ head.weight.detach().numpy().T + head.bias.detach().numpy()
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    results = client.classifiers.classify(model=model, inputs=TEXTS).results
    labels = predictor.targets[0].labels
    served = np.array([[r["intent"].scores[label] for label in labels] for r in results])
    np.testing.assert_allclose(probs, served, atol=1e-4)
    # ... and PyTorch, in process, gives the scores the service computed with ONNX Runtime
    in_torch = EncoderPredictor.load(folder, engine="torch").predict(TEXTS)
    expected = np.array([[r["intent"][label] for label in labels] for r in in_torch])
    np.testing.assert_allclose(served, expected, atol=1e-5)


def test_tfidf_models_have_no_embeddings(client, files):
    job = train(client, files[0], model="tfidf-logreg", steps=5)
    for model in ("tfidf-logreg", job.fine_tuned_model):
        with pytest.raises(errors.HTTPValidationError) as e:
            client.embeddings.create(model=model, inputs=["hello"])
        assert e.value.raw_response.status_code == 422
        assert "no embeddings" in e.value.data.detail[0].msg
        assert e.value.data.detail[0].loc == ["body", "model"]


def test_unknown_model_is_404(client):
    for model in ("ministral-3b-latest", "ft:classifier:minilm-l6-v2:0000:20260101:deadbeef"):
        with pytest.raises(errors.SDKError) as e:
            client.embeddings.create(model=model, inputs=["hello"])
        assert e.value.status_code == 404
        assert "No model matches" in e.value.body


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"inputs": []}, "input"),
        ({"inputs": ["ok"], "output_dtype": "int8"}, "output_dtype"),
        ({"inputs": ["ok"], "encoding_format": "base64"}, "encoding_format"),
        ({"inputs": ["ok"], "output_dimension": 128}, "output_dimension"),
    ],
)
def test_bad_input_is_422_naming_the_field(client, kwargs, field):
    with pytest.raises(errors.HTTPValidationError) as e:
        client.embeddings.create(model="minilm-l6-v2", **kwargs)
    assert e.value.raw_response.status_code == 422
    assert field in e.value.data.detail[0].loc


def test_non_string_and_too_many_inputs_are_422(server):
    url = f"{server.url}/v1/embeddings"
    bad = httpx.post(url, json={"model": "minilm-l6-v2", "input": ["ok", 3]}, timeout=30)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][:2] == ["body", "input"]
    missing = httpx.post(url, json={"input": ["ok"]}, timeout=30)
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "model"]
    many = httpx.post(
        url, json={"model": "minilm-l6-v2", "input": ["x"] * (MAX_EMBED_INPUTS + 1)}, timeout=30
    )
    assert many.status_code == 422


def test_request_size_limit_is_413_and_long_inputs_are_truncated(client):
    with pytest.raises(errors.SDKError) as e:
        client.embeddings.create(model="minilm-l6-v2", inputs=["a" * 15000, "b" * 5001])
    assert e.value.status_code == 413 and "20000" in e.value.body
    long = client.embeddings.create(model="minilm-l6-v2", inputs=["wake me up " * 1500])
    assert long.usage.prompt_tokens == 64  # the encoder reads at most 64 tokens


@pytest.mark.slow  # a service process
def test_auth_is_required_when_configured(tmp_path):
    server = Server(tmp_path / "auth", "--api-key", "emb-secret")
    try:
        with pytest.raises(errors.SDKError) as e:
            server.client("wrong").embeddings.create(model="minilm-l6-v2", inputs=["hi"])
        assert e.value.status_code == 401
        ok = server.client("emb-secret").embeddings.create(model="minilm-l6-v2", inputs=["hi"])
        assert len(ok.data[0].embedding) == 384
    finally:
        server.stop()


@pytest.mark.slow  # trains an encoder
def test_the_extras_recipe_is_a_base_model_of_its_own(client, server, files):
    """``minilm-l6-v2-extras`` (contrastive term + votes) is picked by the model id the SDK
    sends; the job, the model card and the saved model all say so, and the served scores are
    the predictor's own (heads blended with the votes)."""
    from helpers.factory.trainers.encoder import EncoderPredictor

    listed = {m.id: m for m in client.models.list().data}
    assert "votes of the 10 nearest" in listed["minilm-l6-v2-extras"].description
    assert "votes" not in listed["minilm-l6-v2"].description
    job = train(client, *files, model="minilm-l6-v2-extras", steps=3, timeout=300)
    assert job.model == "minilm-l6-v2-extras"
    card = client.models.retrieve(model_id=job.fine_tuned_model)
    assert card.root == "minilm-l6-v2-extras"
    folders = [p.parent for p in (server.data_dir / "models").rglob("classifier.json")]
    folder = next(f for f in folders if json.loads((f / "classifier.json").read_text())["votes"])
    meta = json.loads((folder / "classifier.json").read_text())
    assert meta["base_model"] == "minilm-l6-v2-extras" and meta["recipe"]["name"] == "extras"
    assert meta["recipe"]["contrastive_weight"] == 0.5 and meta["votes"]["k"] == 10
    results = client.classifiers.classify(model=job.fine_tuned_model, inputs=TEXTS).results
    in_torch = EncoderPredictor.load(folder, engine="torch").predict(TEXTS)
    labels = sorted(in_torch[0]["intent"])
    served = np.array([[r["intent"].scores[label] for label in labels] for r in results])
    expected = np.array([[r["intent"][label] for label in labels] for r in in_torch])
    np.testing.assert_allclose(served, expected, atol=1e-5)
