"""The encoder recipe's parts: the recipes and their checks, the model format's older keys, the
bounded frozen cache, per-layer learning rates, the defaults the service reads, the votes of the
nearest training texts and the contrastive term (offline, bundled MiniLM)."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tiny_intents import TEXTS  # noqa: E402

from helpers.factory.trainers import hyperparameters_with_defaults  # noqa: E402
from helpers.factory.trainers.base import Example, TargetSpec, TrainConfig  # noqa: E402
from helpers.factory.trainers.encoder import (  # noqa: E402
    DEFAULTS,
    EXTRAS,
    PLAIN,
    Encoder,
    EncoderPredictor,
    EncoderTrainer,
    ModelFormatError,
    load_tokenizer,
    pretrained_encoder,
    supervised_contrastive_loss,
)
from helpers.factory.trainers.encoder.frozen_cache import FrozenCache  # noqa: E402
from helpers.factory.trainers.encoder.network import pad  # noqa: E402
from helpers.factory.trainers.models import DEFAULT_ENCODER, resolve_encoder  # noqa: E402
from helpers.factory.trainers.tfidf import TfidfLogRegTrainer  # noqa: E402

DATA = [Example(t, {"intent": k}) for k, v in TEXTS.items() for t in v]
TARGET = TargetSpec("intent", sorted(TEXTS), False)
PROBES = ["is it raining in berlin", "play the beatles", "wake me at 5"]


def test_the_plain_recipe_is_the_default_and_the_extras_are_named():
    plain = EncoderTrainer(device="cpu")
    assert plain.recipe == PLAIN and plain.base_model == "minilm-l6-v2"
    assert (PLAIN.contrastive_weight, PLAIN.votes_weight) == (0.0, 0.0)
    extras = EncoderTrainer(recipe=EXTRAS, device="cpu")
    assert extras.base_model == "minilm-l6-v2-extras"
    assert EXTRAS.contrastive_weight > 0 and EXTRAS.votes_weight > 0
    assert "votes of the 10 nearest" in extras.description
    assert "votes" not in plain.description and "contrastive" not in plain.description
    # a keyword changes one field of the recipe; an unknown one says which names exist
    assert EncoderTrainer(device="cpu", trainable_layers=2).recipe.trainable_layers == 2
    with pytest.raises(TypeError, match="unknown recipe field.*blend_weight.*known"):
        EncoderTrainer(device="cpu", blend_weight=0.4)


@pytest.fixture(scope="module")
def encoder():
    path = resolve_encoder(DEFAULT_ENCODER)
    return Encoder(pretrained_encoder(path)).eval(), load_tokenizer(path)


@pytest.mark.slow  # trains or loads an encoder
def test_frozen_cache_modes_agree_and_stay_within_budget(encoder):
    enc, tok = encoder
    texts = [t for v in TEXTS.values() for t in v]
    ids = tok(texts, truncation=True, max_length=64)["input_ids"]
    tokens = sum(len(x) for x in ids)
    dim = enc.model.config.hidden_size
    full = FrozenCache(enc, ids, tok.pad_token_id, 4, torch.device("cpu"))
    half = FrozenCache(enc, ids, tok.pad_token_id, 4, torch.device("cpu"), budget=tokens * dim * 2)
    none = FrozenCache(enc, ids, tok.pad_token_id, 4, torch.device("cpu"), budget=tokens * dim)
    assert (full.mode, half.mode, none.mode) == ("float32", "float16", "recompute")
    assert full.nbytes() == tokens * dim * 4 and half.nbytes() == tokens * dim * 2
    assert none.nbytes() == 0
    pooled = torch.zeros((len(ids), dim))
    for inputs in (full, half, none):
        inputs.fill(pooled if inputs is full else None)
    idx = [0, 7, 13]
    a, mask = full.batch(idx)
    b, _ = half.batch(idx)
    c, _ = none.batch(idx)
    m = mask.unsqueeze(-1).float()  # padding positions are masked out downstream
    assert torch.allclose(a * m, c * m, atol=1e-5)  # recomputing gives the cached values
    assert torch.allclose(a * m, b * m, atol=2e-2)  # float16 storage
    assert mask.sum(dim=1).tolist() == [len(ids[i]) for i in idx]
    # the warm-start embeddings are the frozen encoder's sentence vectors
    ref = enc(*_pad_ids([ids[i] for i in idx], tok.pad_token_id))
    assert torch.allclose(pooled[idx], ref, atol=1e-5)
    # with every layer trainable nothing is cached
    assert FrozenCache(enc, ids, tok.pad_token_id, 0, torch.device("cpu")).mode == "recompute"


def _pad_ids(seqs, pad_id):
    return pad(seqs, pad_id)


@pytest.mark.slow  # trains or loads an encoder
def test_per_layer_learning_rates(tmp_path):
    trainer = EncoderTrainer(
        device="cpu", trainable_layers=3, layer_lr_decay=0.5, head_lr_factor=10.0
    )
    seen = []
    trainer.train(
        DATA,
        None,
        [TARGET],
        TrainConfig(2, 1e-4, 0.01, 0.0),
        tmp_path,
        lambda r: seen.append(r.extra["lr"]),
    )
    meta = json.loads((tmp_path / "classifier.json").read_text())
    assert meta["recipe"]["layer_lr_decay"] == 0.5 and meta["recipe"]["trainable_layers"] == 3
    assert seen[0] == pytest.approx(1e-4)  # the top layer's rate (no warm-up)


def test_service_defaults_come_from_the_trainer():
    trainer = EncoderTrainer(device="cpu")
    hp = hyperparameters_with_defaults(trainer, {"learning_rate": 3e-4})
    assert hp["learning_rate"] == 3e-4
    assert hp["training_steps"] == DEFAULTS.training_steps
    assert hp["weight_decay"] == DEFAULTS.weight_decay
    assert hp["warmup_fraction"] == DEFAULTS.warmup_fraction
    assert hp["seq_len"] == trainer.max_context_length == trainer.max_length
    tfidf = TfidfLogRegTrainer()
    steps = hyperparameters_with_defaults(tfidf, {})["training_steps"]
    assert steps == tfidf.defaults.training_steps
    assert np.isfinite(trainer.expected_seconds(5000, DEFAULTS))


# -- the votes of the nearest training texts (an extra) -------------------------------------------


def _reference_votes(query, vectors, labels, n_labels, k, temperature):
    """The votes' rule written again in numpy (float64)."""
    sims = query.astype(np.float64) @ vectors.astype(np.float64).T
    out = np.zeros((len(query), n_labels))
    for r in range(len(query)):
        top = np.argsort(-sims[r], kind="stable")[:k]
        w = np.exp((sims[r, top] - sims[r, top].max()) / temperature)
        for j, weight in zip(top, w / w.sum(), strict=True):
            out[r, labels[j]] += weight
    return out


@pytest.fixture(scope="module")
def votes_model(module_tmp):
    out = module_tmp("votes")
    trainer = EncoderTrainer(recipe=EXTRAS, device="cpu", trainable_layers=1, votes_k=4)
    trainer.train(
        DATA, None, [TARGET], TrainConfig(3, 1e-4, 0.01, 0.0, seed=2), out, lambda r: None
    )
    return out


@pytest.mark.slow  # loads an encoder
def test_a_votes_file_changed_after_training_is_refused_by_name(votes_model, tmp_path):
    """Issue 29: altered votes gave silently different scores; now each file's sha256, recorded
    at training, is checked at every load."""
    spec = json.loads((votes_model / "classifier.json").read_text())["votes"]
    assert sorted(spec["sha256"]) == ["labels_0.npy", "vectors.npy"]
    copy = tmp_path / "model"
    shutil.copytree(votes_model, copy)
    vectors = np.load(copy / "votes" / "vectors.npy", allow_pickle=False)
    np.save(copy / "votes" / "vectors.npy", vectors[::-1].copy(), allow_pickle=False)  # valid
    with pytest.raises(ModelFormatError, match=r"votes/vectors\.npy: its content is not the one"):
        EncoderPredictor.load(copy, engine="torch")


@pytest.mark.slow  # trains or loads an encoder
def test_votes_are_saved_with_their_rule_and_blend_as_stated(votes_model):
    meta = json.loads((votes_model / "classifier.json").read_text())
    spec = meta["votes"]
    assert meta["format_version"] == 4 and "memory" not in meta and "blend" not in meta
    assert spec["path"] == "votes" and spec["targets"] == [0] and spec["size"] == len(DATA)
    assert (spec["k"], spec["temperature"], spec["weight"]) == (4, 0.05, 0.4)
    assert "k training texts" in spec["rule"] and meta["recipe"]["name"] == "extras"
    vectors = np.load(votes_model / "votes" / "vectors.npy", allow_pickle=False)
    labels = np.load(votes_model / "votes" / "labels_0.npy", allow_pickle=False)
    assert vectors.dtype == np.float16 and vectors.shape == (len(DATA), 384)
    assert labels.tolist() == [TARGET.labels.index(e.labels["intent"]) for e in DATA]
    for engine in ("torch", "onnx"):
        predictor = EncoderPredictor.load(votes_model, engine=engine)
        # the stored vectors are the model's own sentence vectors of the training texts
        again = predictor.embed([e.text for e in DATA])
        assert np.abs(again - vectors.astype(np.float32)).max() < 2e-3
        blended = predictor.predict(PROBES)
        query = predictor.embed(PROBES)
        votes, predictor.scoring.votes = predictor.scoring.votes, None
        plain = predictor.predict(PROBES)
        predictor.scoring.votes = votes
        votes = _reference_votes(query, vectors.astype(np.float32), labels, 3, 4, 0.05)
        for r, (b, p) in enumerate(zip(blended, plain, strict=True)):
            assert sum(b["intent"].values()) == pytest.approx(1.0, abs=1e-5)
            for j, label in enumerate(TARGET.labels):
                expected = 0.6 * p["intent"][label] + 0.4 * votes[r, j]
                assert b["intent"][label] == pytest.approx(expected, abs=1e-5)
        assert [max(p["intent"], key=p["intent"].get) for p in blended] == [
            "weather",
            "music",
            "alarm",
        ]


@pytest.mark.slow  # trains or loads an encoder
def test_no_votes_in_the_plain_recipe_nor_for_multi_label_targets(tmp_path):
    config = TrainConfig(2, 1e-4, 0.01, 0.0, seed=1)
    EncoderTrainer(device="cpu", trainable_layers=1).train(
        DATA, None, [TARGET], config, tmp_path / "off", lambda r: None
    )
    meta = json.loads((tmp_path / "off" / "classifier.json").read_text())
    assert meta["votes"] is None and not (tmp_path / "off" / "votes").exists()
    assert meta["recipe"]["name"] == "plain" and meta["recipe"]["contrastive_weight"] == 0.0
    assert "supervised contrastive" not in meta["recipe"]["loss"]
    assert EncoderPredictor.load(tmp_path / "off").votes is None
    topics = TargetSpec("topics", ["indoors", "outdoors"], True)
    multi = [
        Example(e.text, {"intent": e.labels["intent"], "topics": ["outdoors"]})
        if e.labels["intent"] == "weather"
        else Example(e.text, {"intent": e.labels["intent"], "topics": ["indoors"]})
        for e in DATA
    ]
    trainer = EncoderTrainer(recipe=EXTRAS, device="cpu", trainable_layers=1)
    trainer.train(multi, None, [topics], config, tmp_path / "ml", lambda r: None)
    assert json.loads((tmp_path / "ml" / "classifier.json").read_text())["votes"] is None
    trainer.train(multi, None, [topics, TARGET], config, tmp_path / "both", lambda r: None)
    spec = json.loads((tmp_path / "both" / "classifier.json").read_text())["votes"]
    assert spec["targets"] == [1]  # the single-label target only
    predictor = EncoderPredictor.load(tmp_path / "both")
    scores = predictor.predict(PROBES)
    votes, predictor.scoring.votes = predictor.scoring.votes, None
    plain = predictor.predict(PROBES)
    predictor.scoring.votes = votes
    for s, p in zip(scores, plain, strict=True):
        assert s["topics"] == p["topics"]  # sigmoids untouched
        assert s["intent"] != p["intent"]


def _reference_supcon(z: np.ndarray, y: np.ndarray, t: float) -> float:
    """Khosla et al.'s L_out written out loop by loop (IGNORE rows dropped first)."""
    keep = y != -100
    z, y = z[keep], y[keep]
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    per_anchor = []
    for i in range(len(y)):
        others = [j for j in range(len(y)) if j != i]
        positives = [j for j in others if y[j] == y[i]]
        if not positives:
            continue
        denom = np.log(sum(np.exp(z[i] @ z[a] / t) for a in others))
        per_anchor.append(-np.mean([z[i] @ z[p] / t - denom for p in positives]))
    return float(np.mean(per_anchor))


def test_supervised_contrastive_loss_matches_its_definition():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(9, 5))
    y = np.array([0, 1, 0, 2, 1, 0, -100, 3, 2])  # label 3 has no positive; one row ignored
    for t in (0.1, 0.5):
        got = supervised_contrastive_loss(torch.tensor(z), torch.tensor(y), t)
        assert float(got) == pytest.approx(_reference_supcon(z, y, t), rel=1e-5)
    # vectors of one label pulled together and apart from the others score lower
    clustered = np.repeat(np.eye(3), 3, axis=0) + 0.01 * rng.normal(size=(9, 3))
    labels = torch.tensor(np.repeat(np.arange(3), 3))
    mixed = torch.tensor(clustered[rng.permutation(9)])
    assert float(supervised_contrastive_loss(torch.tensor(clustered), labels)) < float(
        supervised_contrastive_loss(mixed, labels)
    )
    # no anchor has a positive: zero, and still differentiable
    v = torch.randn(3, 4, requires_grad=True)
    loss = supervised_contrastive_loss(v, torch.tensor([0, 1, 2]))
    loss.backward()
    assert float(loss.detach()) == 0.0 and v.grad is not None


@pytest.mark.slow  # trains or loads an encoder
def test_contrastive_term_is_recorded_and_trains_single_label_targets_only(tmp_path):
    config = TrainConfig(3, 1e-4, 0.01, 0.0, seed=1)

    def weights(folder):
        from safetensors.numpy import load_file

        return load_file(str(folder / "model.safetensors"))

    reports: dict[float, list] = {0.5: [], 0.0: []}
    for weight in (0.5, 0.0):
        trainer = EncoderTrainer(device="cpu", trainable_layers=1, contrastive_weight=weight)
        trainer.train(DATA, None, [TARGET], config, tmp_path / f"s{weight}", reports[weight].append)
    # the term is reported next to train_loss, which stays the cross-entropy alone
    assert all(r.extra["contrastive_loss"] > 0 for r in reports[0.5])
    assert all("contrastive_loss" not in r.extra for r in reports[0.0])
    assert reports[0.5][0].train_loss == pytest.approx(reports[0.0][0].train_loss, rel=1e-5)
    meta = json.loads((tmp_path / "s0.5" / "classifier.json").read_text())["recipe"]
    assert (meta["contrastive_weight"], meta["contrastive_temperature"]) == (0.5, 0.1)
    assert "0.5 x supervised contrastive loss" in meta["loss"]
    off = json.loads((tmp_path / "s0.0" / "classifier.json").read_text())["recipe"]
    assert off["contrastive_weight"] == 0.0 and "contrastive" not in off["loss"]
    on, plain = weights(tmp_path / "s0.5"), weights(tmp_path / "s0.0")
    top = "encoder.encoder.layer.5.output.dense.weight"
    assert np.abs(on[top] - plain[top]).max() > 1e-6  # the term changed the training
    # a multi-label target alone gets no contrastive term: identical weights either way
    topics = TargetSpec("topics", ["indoors", "outdoors"], True)
    multi = [
        Example(e.text, {"topics": ["outdoors" if e.labels["intent"] == "weather" else "indoors"]})
        for e in DATA
    ]
    for weight in (0.5, 0.0):
        EncoderTrainer(device="cpu", trainable_layers=1, contrastive_weight=weight).train(
            multi, None, [topics], config, tmp_path / f"m{weight}", lambda r: None
        )
    a, b = weights(tmp_path / "m0.5"), weights(tmp_path / "m0.0")
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"contrastive_weight": -0.5}, "contrastive_weight"),
        ({"contrastive_temperature": 0.0}, "contrastive_temperature"),
        ({"votes_weight": 1.0}, "votes_weight"),
        ({"votes_weight": -0.1}, "votes_weight"),
        ({"votes_k": 0}, "votes_k"),
        ({"votes_temperature": 0.0}, "votes_temperature"),
        ({"trainable_layers": 0}, "trainable_layers"),
    ],
)
def test_recipe_parameters_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EncoderTrainer(device="cpu", **kwargs)


@pytest.mark.slow  # trains or loads an encoder
def test_votes_that_do_not_match_their_model_are_a_clear_error(votes_model, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(votes_model, broken)
    labels = np.load(broken / "votes" / "labels_0.npy")
    np.save(broken / "votes" / "labels_0.npy", labels[:-1])
    with pytest.raises(ValueError, match=r"labels_0\.npy: its content is not the one"):
        EncoderPredictor.load(broken)
    # a model saved before the digests: the shapes and label ranges are still checked
    meta = json.loads((broken / "classifier.json").read_text())
    del meta["votes"]["sha256"]
    (broken / "classifier.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"labels_0\.npy: labels do not match"):
        EncoderPredictor.load(broken)
    np.save(broken / "votes" / "labels_0.npy", labels + 7)
    with pytest.raises(ValueError, match="target 'intent'"):
        EncoderPredictor.load(broken)


@pytest.mark.slow  # trains or loads an encoder
def test_older_model_formats_load_or_are_refused_with_the_field_named(votes_model, tmp_path):
    import shutil

    # format 3 called the votes "memory" (key and folder): it loads, with the same scores
    old = tmp_path / "v3"
    shutil.copytree(votes_model, old)
    (old / "votes").rename(old / "memory")
    meta = json.loads((old / "classifier.json").read_text())
    meta["memory"] = {**meta.pop("votes"), "path": "memory"}
    meta["format_version"], meta["blend"] = 3, None
    (old / "classifier.json").write_text(json.dumps(meta))
    now = EncoderPredictor.load(votes_model, engine="torch").predict(PROBES)
    then = EncoderPredictor.load(old, engine="torch").predict(PROBES)
    assert then == now
    # a TF-IDF blend (format 2) is no longer supported: the error names the file and field
    meta["blend"] = {"component": "tfidf-logreg", "path": "tfidf", "weight": 0.5}
    (old / "classifier.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match=r"classifier\.json: field 'blend'"):
        EncoderPredictor.load(old)
    meta.pop("blend")
    meta["format_version"] = 99
    (old / "classifier.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match="newer than this code"):
        EncoderPredictor.load(old)
