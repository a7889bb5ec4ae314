"""Sentence embeddings from encoder models: the pooled vector the classification heads read.

:func:`embed` runs a loaded :class:`~.encoder.EncoderPredictor` (a fine-tuned encoder
classifier) or a base encoder from :func:`load_base_encoder` up to the pooling step — mean
pooling over the tokens, then L2 normalisation, exactly as training and ``predict`` do — and
returns one unit-length vector per text. TF-IDF models have no such vector.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from torch import nn

from .encoder import PLAIN, Encoder, EncoderPredictor, load_tokenizer, pretrained_encoder
from .models import resolve_encoder


class NoEmbeddings(ValueError):
    """The model has no sentence encoder (e.g. TF-IDF), so it has no embeddings."""


def supports_embeddings(predictor) -> bool:
    return isinstance(predictor, EncoderPredictor)


_base_lock = threading.Lock()


@lru_cache(maxsize=2)
def _load_base(model_name: str) -> EncoderPredictor:
    path = resolve_encoder(model_name)
    if path is None:
        raise NoEmbeddings(f"the encoder {model_name} is not available offline on this machine")
    enc = Encoder(pretrained_encoder(path))
    return EncoderPredictor(enc, nn.ModuleList(), load_tokenizer(path), [], PLAIN.max_length)


def load_base_encoder(model_name: str) -> EncoderPredictor:
    """The pretrained encoder ``model_name`` (a Hugging Face name) without heads; cached."""
    with _base_lock:
        return _load_base(model_name)


def embed(predictor, texts: Sequence[str]) -> tuple[np.ndarray, int]:
    """``(vectors, n_tokens)``: one L2-normalised mean-pooled float32 row per text.

    ``n_tokens`` counts the tokens the encoder read (after truncation to its max length).
    """
    if not supports_embeddings(predictor):
        raise NoEmbeddings(f"{type(predictor).__name__} has no sentence encoder")
    return predictor.embed_counted(texts)
