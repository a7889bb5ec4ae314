"""The encoder recipe's parts: the TF-IDF blend component, the bounded frozen-layer cache,
per-layer learning rates and the defaults the service reads (offline, bundled MiniLM)."""

from __future__ import annotations

import json
import os

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
    EncoderPredictor,
    EncoderTrainer,
    _Encoder,
    _FrozenInputs,
    _load_tokenizer,
    _pretrained_encoder,
)
from helpers.factory.trainers.models import DEFAULT_ENCODER, resolve_encoder  # noqa: E402
from helpers.factory.trainers.tfidf import TfidfLogRegTrainer, TfidfPredictor  # noqa: E402

DATA = [Example(t, {"intent": k}) for k, v in TEXTS.items() for t in v]
TARGET = TargetSpec("intent", sorted(TEXTS), False)
PROBES = ["is it raining in berlin", "play the beatles", "wake me at 5"]


def test_blend_component_is_a_tfidf_model_and_the_rule_is_stated(tmp_path):
    trainer = EncoderTrainer(device="cpu", trainable_layers=1, blend_weight=0.4)
    trainer.train(
        DATA, DATA[::4], [TARGET], TrainConfig(3, 1e-4, 0.01, 0.0, seed=1), tmp_path, lambda r: None
    )
    meta = json.loads((tmp_path / "classifier.json").read_text())
    assert meta["blend"]["component"] == "tfidf-logreg"
    assert meta["blend"]["weight"] == 0.4 and meta["blend"]["path"] == "tfidf"
    assert (tmp_path / "tfidf" / "config.json").is_file()
    # the component is a complete tfidf-logreg model directory, loadable by its own trainer
    linear = TfidfLogRegTrainer().load(tmp_path / "tfidf").predict(PROBES)
    blended = EncoderPredictor.load(tmp_path)
    assert isinstance(blended.tfidf, TfidfPredictor)
    mixed = blended.predict(PROBES)
    blended.tfidf, blended.blend_weight = None, 0.0
    encoder_only = blended.predict(PROBES)
    for m, e, lin in zip(mixed, encoder_only, linear, strict=True):
        assert sum(m["intent"].values()) == pytest.approx(1.0, abs=1e-6)
        for label in TARGET.labels:
            expected = 0.6 * e["intent"][label] + 0.4 * lin["intent"][label]
            assert m["intent"][label] == pytest.approx(expected, abs=1e-9)
    assert [max(p["intent"], key=p["intent"].get) for p in mixed] == ["weather", "music", "alarm"]


def test_blend_weight_must_be_below_one():
    with pytest.raises(ValueError, match="blend_weight"):
        EncoderTrainer(device="cpu", blend_weight=1.0)


@pytest.fixture(scope="module")
def encoder():
    path = resolve_encoder(DEFAULT_ENCODER)
    return _Encoder(_pretrained_encoder(path)).eval(), _load_tokenizer(path)


def test_frozen_cache_modes_agree_and_stay_within_budget(encoder):
    enc, tok = encoder
    texts = [t for v in TEXTS.values() for t in v]
    ids = tok(texts, truncation=True, max_length=64)["input_ids"]
    tokens = sum(len(x) for x in ids)
    dim = enc.model.config.hidden_size
    full = _FrozenInputs(enc, ids, tok.pad_token_id, 4, torch.device("cpu"))
    half = _FrozenInputs(
        enc, ids, tok.pad_token_id, 4, torch.device("cpu"), budget=tokens * dim * 2
    )
    none = _FrozenInputs(enc, ids, tok.pad_token_id, 4, torch.device("cpu"), budget=tokens * dim)
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
    assert _FrozenInputs(enc, ids, tok.pad_token_id, 0, torch.device("cpu")).mode == "recompute"


def _pad_ids(seqs, pad_id):
    from helpers.factory.trainers.encoder import _pad

    return _pad(seqs, pad_id)


def test_per_layer_learning_rates(tmp_path):
    trainer = EncoderTrainer(
        device="cpu", trainable_layers=3, layer_lr_decay=0.5, head_lr_factor=10.0, blend_weight=0.0
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
