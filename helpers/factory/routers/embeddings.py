"""``POST /v1/embeddings``: the sentence vector of a base encoder or a fine-tuned classifier.

The vector is the one the classification heads read: mean pooling over the tokens, then L2
normalisation (unit length, so a dot product is the cosine similarity). ``input`` is a string or
a non-empty list of at most ``MAX_EMBED_INPUTS`` strings. Differences from Mistral's endpoint
(see docs/service.md): only ``float`` vectors in JSON (``output_dtype`` other than
``float`` and ``encoding_format="base64"`` are refused with 422), ``output_dimension`` must be
the model's own dimension, and TF-IDF models have no embeddings (422).

Limits as for classifications (see :mod:`..limits`): more than ``max_request_chars`` characters
in all is refused (413), each input is truncated to ``max_input_chars`` (the encoder itself reads
at most its maximum number of tokens), unpaired surrogates are refused (422).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import numpy as np
from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from ...text_batches import length_sorted_batches
from ..deps import FactoryDep
from ..errors import NO_MODEL, conflict, damaged, gone, invalid, not_found
from ..predictors import MAX_BATCH, Batcher, ModelBroken, ModelUnavailable
from ..schemas import EmbeddingRequest, EmbeddingResponse
from .classifications import checked_inputs, gone_message, missing_files

router = APIRouter(tags=["embeddings"])


def _no_embeddings(model: str, root: str) -> Exception:
    return invalid(
        ["body", "model"],
        f"{model} is a {root} model: TF-IDF features are not a sentence embedding, so it has "
        "no embeddings; use an encoder (e.g. minilm-l6-v2) or a classifier fine-tuned from one",
        model,
    )


def _encoder_for(body: EmbeddingRequest, factory) -> tuple[Any, Batcher | None]:
    """The loaded encoder (a predictor) for ``body.model`` and, for a fine-tuned model, the
    batcher whose thread runs it; or an HTTP error."""
    from ..trainers.embeddings import load_base_encoder, supports_embeddings

    model = factory.store.get_model(body.model)
    if model is not None:
        if missing_files(factory, model):
            raise gone(gone_message(factory, model))
        try:
            batcher = factory.predictors.get(model)
        except ModelBroken as exc:
            raise damaged(str(exc)) from None
        except ModelUnavailable as exc:
            raise conflict(str(exc)) from None
        except FileNotFoundError:  # deleted between the check and the load
            factory.predictors.evict(model.id)
            raise gone(gone_message(factory, model)) from None
        if not supports_embeddings(batcher.predictor):
            raise _no_embeddings(body.model, model.root)
        return batcher.predictor, batcher
    trainer = factory.registry.get(body.model)
    if trainer is None:
        raise not_found(NO_MODEL)
    name = getattr(trainer, "model_name", None)
    if name is None:  # tfidf-logreg
        raise _no_embeddings(body.model, getattr(trainer, "base_model", body.model))
    return load_base_encoder(name), None


# a base encoder has no batcher thread: requests take turns on it here, waiting on the event
# loop (50 waiting requests used to hold 50 of the thread pool's 40 threads, freezing every
# other route, /health included)
_turns: dict[int, asyncio.Lock] = {}


async def _embed_in_turns(predictor, batcher: Batcher | None, texts: list[str], size: int):
    """``(vectors, n_tokens)`` of ``texts``, computed one length-sorted chunk at a time, so
    other requests on the same model get their turn between two chunks."""
    from ..trainers.embeddings import embed

    vectors: np.ndarray | None = None
    n_tokens = 0
    for idx in length_sorted_batches(texts, size):
        chunk = [texts[i] for i in idx]
        if batcher is not None:  # on the thread the model lives on (see predictors)
            part, tokens = await asyncio.wrap_future(batcher.call_future(embed, predictor, chunk))
        else:
            async with _turns.setdefault(id(predictor), asyncio.Lock()):
                part, tokens = await run_in_threadpool(embed, predictor, chunk)
        if vectors is None:
            vectors = np.empty((len(texts), part.shape[1]), dtype=part.dtype)
        vectors[idx] = part
        n_tokens += tokens
    assert vectors is not None  # checked_inputs refuses an empty input
    return vectors, n_tokens


@router.post("/embeddings", response_model=EmbeddingResponse)
async def create_embeddings(body: EmbeddingRequest, factory: FactoryDep):
    if body.output_dtype not in (None, "float"):
        raise invalid(
            ["body", "output_dtype"],
            "only output_dtype 'float' is supported by the local service",
            body.output_dtype,
        )
    if body.encoding_format not in (None, "float"):
        raise invalid(
            ["body", "encoding_format"],
            "only encoding_format 'float' is supported by the local service",
            body.encoding_format,
        )
    texts = checked_inputs(body.input, factory, "embeddings")
    predictor, batcher = await run_in_threadpool(_encoder_for, body, factory)
    dim = predictor.enc.hidden_size
    if body.output_dimension is not None and body.output_dimension != dim:
        raise invalid(
            ["body", "output_dimension"],
            f"{body.model} has {dim}-dimensional embeddings; omit output_dimension "
            f"or set it to {dim}",
            body.output_dimension,
        )
    size = batcher.max_batch if batcher is not None else MAX_BATCH
    try:
        vectors, n_tokens = await _embed_in_turns(predictor, batcher, texts, size)
    except ModelUnavailable as exc:
        raise conflict(str(exc)) from None
    return {
        "id": uuid.uuid4().hex,
        "object": "list",
        "model": body.model,
        "data": [
            {"object": "embedding", "embedding": v, "index": i}
            for i, v in enumerate(vectors.tolist())
        ],
        "usage": {"prompt_tokens": n_tokens, "completion_tokens": 0, "total_tokens": n_tokens},
    }
