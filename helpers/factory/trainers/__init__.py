"""The base models this machine can fine-tune: ids served by ``GET /v1/models`` -> trainers.

``tfidf-logreg`` is always there. The sentence encoders (``minilm-l6-v2``, the default, and
``multilingual-minilm-l12-v2``) are offered only when their trainer imports and their weights
are found locally; full Hugging Face names are accepted as aliases of the short ids.
"""

from __future__ import annotations

import logging
import threading

from .base import Trainer
from .tfidf import TfidfLogRegTrainer

log = logging.getLogger(__name__)

DEFAULT_BASE_MODEL = "minilm-l6-v2"
ENCODERS = {
    "minilm-l6-v2": "sentence-transformers/all-MiniLM-L6-v2",
    "multilingual-minilm-l12-v2": "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2",
}
_DEFAULT_ATTRIBUTES = {
    "default_training_steps": "DEFAULT_TRAINING_STEPS",
    "default_learning_rate": "DEFAULT_LEARNING_RATE",
    "default_weight_decay": "DEFAULT_WEIGHT_DECAY",
    "default_warmup_fraction": "DEFAULT_WARMUP_FRACTION",
}


def _encoder_trainers(skip=()) -> dict[str, Trainer]:
    try:
        from . import encoder
        from .models import resolve_encoder
    except ImportError as exc:
        log.warning("encoder trainers unavailable: %s", exc)
        return {}
    trainers: dict[str, Trainer] = {}
    for short, name in ENCODERS.items():
        if short in skip or resolve_encoder(name) is None:
            continue
        trainer = encoder.EncoderTrainer(name)
        # the encoder module keeps its defaults as constants: expose them as attributes
        for attribute, constant in _DEFAULT_ATTRIBUTES.items():
            if not hasattr(trainer, attribute) and hasattr(encoder, constant):
                setattr(trainer, attribute, getattr(encoder, constant))
        trainers[short] = trainer
    return trainers


class Registry:
    """Trainers by base model id, discovered lazily (importing torch takes a while).

    An encoder whose weights appear later (e.g. lesson 06 downloads the multilingual one
    while the service runs) is offered from the next request on: the encoders not found yet
    are looked up again, locally, on each call.
    """

    def __init__(self, trainers: dict[str, Trainer] | None = None):
        self._trainers = trainers
        self._discover = trainers is None
        self._lock = threading.Lock()

    def trainers(self) -> dict[str, Trainer]:
        with self._lock:
            if self._trainers is None:
                found = _encoder_trainers()
                found["tfidf-logreg"] = TfidfLogRegTrainer()
                self._trainers = {k: t for k, t in found.items() if t.availability()[0]}
            elif self._discover and not set(ENCODERS) <= set(self._trainers):
                new = _encoder_trainers(skip=set(self._trainers))
                self._trainers |= {k: t for k, t in new.items() if t.availability()[0]}
            return self._trainers

    def available(self) -> list[str]:
        return list(self.trainers())

    def canonical(self, model: str) -> str:
        """The short id for ``model`` (full Hugging Face names are aliases)."""
        for short, name in ENCODERS.items():
            if model == name:
                return short
        return model

    def get(self, model: str) -> Trainer | None:
        return self.trainers().get(self.canonical(model))


FALLBACK_HYPERPARAMETERS = {
    "training_steps": 100,
    "learning_rate": 1e-4,
    "weight_decay": 0.1,
    "warmup_fraction": 0.05,
}


def hyperparameters_with_defaults(trainer: Trainer, requested: dict) -> dict:
    """The job's hyperparameters: the request's, else the trainer's ``default_*`` attributes.

    ``training_steps`` stays None when only ``epochs`` is given (it is derived at validation,
    once the number of training examples is known). ``seq_len`` is the trainer's max length.
    """
    out = {}
    for key, fallback in FALLBACK_HYPERPARAMETERS.items():
        value = requested.get(key)
        out[key] = value if value is not None else getattr(trainer, f"default_{key}", fallback)
    if requested.get("training_steps") is None and requested.get("epochs"):
        out["training_steps"] = None
    out["epochs"] = requested.get("epochs")
    out["seq_len"] = getattr(trainer, "max_length", None)
    return out
