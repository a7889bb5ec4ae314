"""``POST /v1/classifications``: scores for every target and label of a fine-tuned model.

``input`` is a string or a non-empty list of strings; empty strings are allowed (they get the
model's scores for "no text"). Single-label targets get softmax scores that sum to 1;
multi-label targets get independent sigmoid scores (a label applies when its score is at least
``MULTI_LABEL_THRESHOLD`` = 0.5).
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from ..app import FactoryDep
from ..errors import NO_MODEL, conflict, invalid, not_found
from ..predictors import ModelUnavailable
from ..schemas import ClassificationRequest, ClassificationResponse

router = APIRouter(tags=["classifiers"])


@router.post("/classifications", response_model=ClassificationResponse)
def classify(body: ClassificationRequest, factory: FactoryDep):
    model = factory.store.get_model(body.model)
    if model is None:
        if factory.registry.get(body.model) is not None:
            raise invalid(
                ["body", "model"],
                f"{body.model} is a base model without a classification head; classify with a "
                "fine-tuned model (ft:classifier:...) from a successful job",
                body.model,
            )
        raise not_found(NO_MODEL)
    texts = [body.input] if isinstance(body.input, str) else body.input
    try:
        predictor = factory.predictors.get(model)
    except ModelUnavailable as exc:
        raise conflict(str(exc)) from None
    results = predictor.predict(texts)
    return {
        "id": uuid.uuid4().hex,
        "model": body.model,
        "results": [
            {target: {"scores": scores} for target, scores in result.items()}
            for result in results
        ],
    }
