"""classify_all and embed_all send length-sorted batches and give results in input order."""

from __future__ import annotations

import types

import numpy as np
import pytest

from helpers.evaluation import classify_all, length_sorted_batches, with_retries
from helpers.ood import embed_all

TEXTS = ["a much longer utterance here", "hi", "medium text", "x", "another long one!", "ok"]


class Recorder:
    """Answers like the service: the score of label "len" is the text's length."""

    def __init__(self, fail_first=0):
        self.batches: list[list[str]] = []
        self.fail_first = fail_first
        self.classifiers = types.SimpleNamespace(classify=self.classify)
        self.embeddings = types.SimpleNamespace(create=self.create)

    def _maybe_fail(self):
        if self.fail_first:
            self.fail_first -= 1
            error = RuntimeError("busy")
            error.status_code = 503
            raise error

    def classify(self, model, inputs):
        self._maybe_fail()
        self.batches.append(list(inputs))
        scores = [types.SimpleNamespace(scores={"len": float(len(t))}) for t in inputs]
        return types.SimpleNamespace(results=[{"intent": s} for s in scores])

    def create(self, model, inputs):
        self.batches.append(list(inputs))
        data = [
            types.SimpleNamespace(index=i, embedding=[float(len(t)), 1.0])
            for i, t in enumerate(inputs)
        ]
        return types.SimpleNamespace(data=data[::-1])  # the service may answer out of order


def test_batches_are_length_sorted_and_cover_every_index_once():
    batches = length_sorted_batches(TEXTS, 4)
    assert [len(b) for b in batches] == [4, 2]
    assert sorted(i for b in batches for i in b) == list(range(len(TEXTS)))
    lengths = [len(TEXTS[i]) for b in batches for i in b]
    assert lengths == sorted(lengths)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        length_sorted_batches(TEXTS, 0)


def test_classify_all_restores_the_input_order():
    client = Recorder()
    results = classify_all(client, "m", TEXTS, batch_size=2, progress=False)
    assert [r["intent"]["len"] for r in results] == [float(len(t)) for t in TEXTS]
    assert client.batches[0] == ["x", "hi"]  # shortest first
    assert all(len(b) <= 2 for b in client.batches)


def test_classify_all_retries_a_busy_service():
    client = Recorder(fail_first=2)
    results = classify_all(client, "m", TEXTS, batch_size=3, progress=False, backoff_seconds=0)
    assert len(results) == len(TEXTS) and len(client.batches) == 2


def test_embed_all_restores_the_input_order():
    client = Recorder()
    vectors = embed_all(client, "m", TEXTS, batch_size=4)
    assert vectors.shape == (len(TEXTS), 2)
    np.testing.assert_array_equal(vectors[:, 0], [len(t) for t in TEXTS])


def test_other_errors_are_raised_at_once():
    calls = []

    def call():
        calls.append(1)
        raise ValueError("bad request")

    with pytest.raises(ValueError, match="bad request"):
        with_retries(call, retries=3, backoff_seconds=0)
    assert len(calls) == 1
