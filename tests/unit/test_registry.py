"""The base-model registry: encoders that appear later, without a lookup on every request."""

from __future__ import annotations

from helpers.factory import trainers as registry_module
from helpers.factory.trainers import ENCODERS, Registry
from helpers.factory.trainers.tfidf import TfidfLogRegTrainer


def test_a_missing_encoder_is_looked_up_on_request_but_listings_are_rate_limited(monkeypatch):
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
    assert set(registry.available()) == {first, "tfidf-logreg"}
    for _ in range(50):  # listings within REDISCOVER_SECONDS do not look again
        registry.available()
        assert registry.get(first) is installed[first]
    assert len(calls) == 1

    installed[second] = TfidfLogRegTrainer()  # e.g. lesson 6 downloads the multilingual one
    assert registry.get(second) is installed[second]  # a request for it looks at once
    assert len(calls) == 2

    installed.pop(second)
    registry3 = Registry()
    registry3.available()
    n = len(calls)
    registry3.available()
    assert len(calls) == n  # too soon
    now[0] += registry_module.REDISCOVER_SECONDS
    registry3.available()
    assert len(calls) == n + 1  # listings look again after the interval
