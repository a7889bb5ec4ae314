"""The base models this machine can fine-tune: ids served by ``GET /v1/models`` -> trainers.

``tfidf-logreg`` is always there. The sentence encoders of :data:`models.ENCODERS`
(``minilm-l6-v2``, the default, and ``multilingual-minilm-l12-v2``) are offered with the plain
recipe, and ``minilm-l6-v2-extras`` is the default encoder with the extras recipe (a contrastive
term and the votes of the nearest training texts; see ``encoder/recipe.py``), only when their
trainer imports and their weights are found locally; full Hugging Face names are accepted as
aliases of the plain short ids. Encoder trainers run on ``device`` (``auto``: CUDA, then Apple
MPS, then CPU; see ``device.py``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

from .base import Trainer
from .models import ENCODERS, resolve_encoder
from .tfidf import TfidfLogRegTrainer

log = logging.getLogger(__name__)

DEFAULT_BASE_MODEL = next(iter(ENCODERS))
REDISCOVER_SECONDS = 2.0
RECIPE_MODELS: dict[str, tuple[str, str]] = {
    f"{DEFAULT_BASE_MODEL}-extras": (DEFAULT_BASE_MODEL, "extras")
}
"""Base model ids offered with a recipe other than the plain one -> (encoder id, recipe name)."""
ENCODER_MODELS = [*ENCODERS, *RECIPE_MODELS]
"""Every encoder base model id this machine may offer."""
__all__ = [
    "DEFAULT_BASE_MODEL",
    "ENCODERS",
    "ENCODER_MODELS",
    "RECIPE_MODELS",
    "Registry",
    "hyperparameters_with_defaults",
]


def _encoder_trainers(device: str, skip=()) -> dict[str, Trainer]:
    try:
        from .encoder import RECIPES, EncoderTrainer
    except ImportError as exc:
        log.warning("encoder trainers unavailable: %s", exc)
        return {}
    found: dict[str, Trainer] = {}
    for model_id in ENCODER_MODELS:
        short, recipe = RECIPE_MODELS.get(model_id, (model_id, "plain"))
        name = ENCODERS[short]
        if model_id not in skip and resolve_encoder(name) is not None:
            found[model_id] = EncoderTrainer(
                name, RECIPES[recipe], base_model=model_id, device=device
            )
    return found


class Registry:
    """Trainers by base model id, discovered lazily (importing torch takes a while).

    An encoder whose weights appear later (e.g. lesson 06 downloads the multilingual one
    while the service runs) is offered from then on: a listing of the base models, or a
    request for that encoder, looks for it again, locally, at once. Every other call (e.g. the
    trainer of each fine-tuned model in ``GET /v1/models``, once per model) looks at most every
    :data:`REDISCOVER_SECONDS`: a local lookup costs ~0.2 ms, and a listing of 80 models used to
    pay it 80 times.
    """

    def __init__(self, trainers: dict[str, Trainer] | None = None, device: str = "auto"):
        self._trainers = trainers
        self._discover = trainers is None
        self.device = device
        self._lock = threading.Lock()
        self._looked = 0.0

    def trainers(self, look_again: bool = False) -> dict[str, Trainer]:
        with self._lock:
            if self._trainers is None:
                found = _encoder_trainers(self.device)
                found["tfidf-logreg"] = TfidfLogRegTrainer()
                self._trainers = {k: t for k, t in found.items() if t.availability()[0]}
                self._looked = time.monotonic()
            elif (
                self._discover
                and not set(ENCODER_MODELS) <= set(self._trainers)
                and (look_again or time.monotonic() - self._looked >= REDISCOVER_SECONDS)
            ):
                new = _encoder_trainers(self.device, skip=set(self._trainers))
                self._trainers |= {k: t for k, t in new.items() if t.availability()[0]}
                self._looked = time.monotonic()
            return self._trainers

    def available(self) -> list[str]:
        return list(self.trainers(look_again=True))

    def canonical(self, model: str) -> str:
        """The short id for ``model`` (full Hugging Face names are aliases)."""
        for short, name in ENCODERS.items():
            if model == name:
                return short
        return model

    def get(self, model: str) -> Trainer | None:
        key = self.canonical(model)
        found = self.trainers().get(key)
        if found is None and key in ENCODER_MODELS:  # it may have been installed since
            found = self.trainers(look_again=True).get(key)
        return found


HYPERPARAMETERS = ("training_steps", "learning_rate", "weight_decay", "warmup_fraction")


def hyperparameters_with_defaults(trainer: Trainer, requested: dict) -> dict:
    """The job's hyperparameters: the request's, else the trainer's ``defaults``.

    ``training_steps`` stays None when only ``epochs`` is given (it is derived at validation,
    once the number of training examples is known). ``seq_len`` is the trainer's
    ``max_context_length``.
    """
    defaults = dataclasses.asdict(trainer.defaults)
    out = {}
    for key in HYPERPARAMETERS:
        value = requested.get(key)
        out[key] = value if value is not None else defaults[key]
    if requested.get("training_steps") is None and requested.get("epochs"):
        out["training_steps"] = None
    out["epochs"] = requested.get("epochs")
    out["seq_len"] = trainer.max_context_length
    return out
