"""The base-model registry: encoders that appear later, without a lookup on every call."""

from __future__ import annotations

from helpers.factory import trainers as registry_module
from helpers.factory.trainers import ENCODERS, Registry
from helpers.factory.trainers.tfidf import TfidfLogRegTrainer


def test_a_missing_encoder_is_looked_up_when_listed_or_requested_and_otherwise_rate_limited(
    monkeypatch,
):
    calls: list[set] = []
    installed: dict = {}
    first, second = list(ENCODERS)[:2]

    def fake_encoder_trainers(device, skip=()):
        calls.append(set(skip))
        return {k: v for k, v in installed.items() if k not in skip}

    monkeypatch.setattr(registry_module, "_encoder_trainers", fake_encoder_trainers)
    now = [1000.0]
    monkeypatch.setattr(registry_module.time, "monotonic", lambda: now[0])
    installed[first] = TfidfLogRegTrainer()  # any trainer stands in for an encoder's
    registry = Registry()
    assert registry.get(first) is installed[first]
    for _ in range(50):  # e.g. one call per fine-tuned model in GET /v1/models
        assert registry.get(first) is installed[first]
        assert registry.get("tfidf-logreg") is not None
        registry.trainers()
    assert len(calls) == 1
    now[0] += registry_module.REDISCOVER_SECONDS
    registry.trainers()
    assert len(calls) == 2  # after the interval, a plain call looks again

    installed[second] = TfidfLogRegTrainer()  # e.g. lesson 6 downloads the multilingual one
    assert set(registry.available()) == {first, second, "tfidf-logreg"}  # a listing looks at once
    assert len(calls) == 3

    installed.pop(second)
    fresh = Registry()
    fresh.trainers()
    installed[second] = TfidfLogRegTrainer()
    assert fresh.get(second) is installed[second]  # a request for it looks at once, too
