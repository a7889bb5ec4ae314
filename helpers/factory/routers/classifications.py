"""``POST /v1/classifications``: scores for every target and label of a fine-tuned model.

``input`` is a string or a non-empty list of strings; empty strings are allowed (they get the
model's scores for "no text"). Single-label targets get softmax scores that sum to 1;
multi-label targets get independent sigmoid scores (a label applies when its score is at least
``MULTI_LABEL_THRESHOLD`` = 0.5).

Limits (see :mod:`..limits`): a request with more than ``max_request_chars`` characters in all
is refused (413); each input longer than ``max_input_chars`` is truncated to it, as Mistral
truncates inputs to the model's context. Concurrent requests to one model share forward passes
(:class:`..predictors.Batcher`).
"""

from __future__ import annotations

import asyncio
import uuid

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from ...text_batches import length_sorted_batches
from ..deps import Factory, FactoryDep
from ..errors import NO_MODEL, conflict, damaged, gone, invalid, not_found, too_large
from ..predictors import Batcher, ModelBroken, ModelUnavailable
from ..schemas import ClassificationRequest, ClassificationResponse
from ..store import ModelRow

router = APIRouter(tags=["classifiers"])
RELOADS = 2  # a model evicted from the LRU while a request waits is loaded again this often


def missing_files(factory: Factory, model: ModelRow) -> bool:
    """True (and the model unloaded) when its folder was deleted outside the service."""
    if factory.store.model_dir(model).is_dir():
        return False
    factory.predictors.evict(model.id)
    return True


def gone_message(factory: Factory, model: ModelRow) -> str:
    return (
        f"Model {model.id} is listed but its files ({factory.store.model_dir(model)}) are "
        f"missing: they were deleted outside the service. Delete the model "
        f"(DELETE /v1/models/{model.id}) and train it again."
    )


def checked_inputs(raw: str | list[str], factory: Factory, what: str) -> list[str]:
    """The request's texts within the service's limits (shared by classifications and embeddings):
    413 over the per-request character limit, 422 for text that cannot be encoded, and each text
    cut to the per-input limit."""
    limits = factory.settings.limits
    texts = [raw] if isinstance(raw, str) else raw
    total = sum(len(t) for t in texts)
    if total > limits.max_request_chars:
        raise too_large(
            f"The inputs hold {total} characters; one {what} request may "
            f"hold at most {limits.max_request_chars} (serve --max-request-chars). "
            "Send them in several requests."
        )
    for i, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            loc: list[str | int] = (
                ["body", "input"] if isinstance(raw, str) else ["body", "input", i]
            )
            raise invalid(
                loc,
                f"unpaired surrogate {text[exc.start]!r} at character "
                f"{exc.start}: the text cannot be encoded as UTF-8",
            ) from None
    cap = limits.max_input_chars
    return [t[:cap] for t in texts]


def _lookup(factory: Factory, name: str) -> ModelRow:
    model = factory.store.get_model(name)
    if model is None:
        if factory.registry.get(name) is not None:
            raise invalid(
                ["body", "model"],
                f"{name} is a base model without a classification head; classify with a "
                "fine-tuned model (ft:classifier:...) from a successful job",
                name,
            )
        raise not_found(NO_MODEL)
    if missing_files(factory, model):
        raise gone(gone_message(factory, model))
    return model


def _loaded(factory: Factory, name: str) -> Batcher:
    """The model's loaded batcher (database lookup and loading in one thread-pool hop), or an
    HTTP error."""
    model = _lookup(factory, name)
    try:
        return factory.predictors.get(model)
    except ModelBroken as exc:
        raise damaged(str(exc)) from None
    except ModelUnavailable as exc:
        raise conflict(str(exc)) from None
    except FileNotFoundError:  # deleted between the check and the load
        factory.predictors.evict(model.id)
        raise gone(gone_message(factory, model)) from None


@router.post("/classifications", response_model=ClassificationResponse)
async def classify(body: ClassificationRequest, factory: FactoryDep):
    texts = checked_inputs(body.input, factory, "classification")
    # a loaded model is served without a thread-pool hop (~1 ms per request on 2 cores); it is
    # unloaded when deleted here, and its folder is checked (deleted by hand or by another
    # process sharing the data folder)
    batcher = factory.predictors.peek(body.model)
    if batcher is None or not batcher.model_dir.is_dir():
        batcher = await run_in_threadpool(_loaded, factory, body.model)
    # one turn of at most max_batch texts at a time: a 10,000-text request no longer holds the
    # model for a minute while a one-utterance request waits behind it
    results: list = [None] * len(texts)
    for idx in length_sorted_batches(texts, batcher.max_batch):
        chunk = [texts[i] for i in idx]
        for attempt in range(RELOADS + 1):
            try:
                done = await asyncio.wrap_future(batcher.submit(chunk))
                break
            except ModelUnavailable as exc:
                # unloaded (LRU eviction) between our lookup and our turn: load it again
                if not batcher.closed or attempt == RELOADS:
                    raise conflict(str(exc)) from None
                batcher = await run_in_threadpool(_loaded, factory, body.model)
        for i, result in zip(idx, done, strict=True):
            results[i] = result
    return {
        "id": uuid.uuid4().hex,
        "model": body.model,
        "results": [
            {target: {"scores": scores} for target, scores in result.items()} for result in results
        ],
    }
