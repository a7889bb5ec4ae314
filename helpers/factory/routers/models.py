"""``/v1/models``: the base models this machine can fine-tune, and the fine-tuned models."""

from __future__ import annotations

import shutil

from fastapi import APIRouter

from ..deps import Factory, FactoryDep, ModelDep
from ..errors import ApiError, gone
from ..schemas import ModelCard, ModelDeleted, ModelList
from ..store import ModelRow
from ..trainers import ENCODERS
from .classifications import gone_message, missing_files

router = APIRouter(tags=["models"])


def base_card(factory: Factory, model_id: str) -> dict:
    trainer = factory.registry.trainers()[model_id]
    return {
        "id": model_id,
        "type": "base",
        "created": factory.started,
        "description": trainer.description,
        "max_context_length": trainer.max_context_length,
        "aliases": [ENCODERS[model_id]] if model_id in ENCODERS else [],
        "capabilities": {"fine_tuning": True, "classification": True},
    }


def ft_card(factory: Factory, model: ModelRow) -> dict:
    trainer = factory.registry.get(model.root)
    return {
        "id": model.id,
        "type": "fine-tuned",
        "created": model.created,
        "job": model.job_id,
        "root": model.root,
        "archived": model.archived,
        "description": f"{model.root} fine-tuned by job {model.job_id}",
        "max_context_length": trainer.max_context_length if trainer is not None else 512,
        "capabilities": {"fine_tuning": False, "classification": True},
        "classifier_targets": model.classifier_targets,
    }


@router.get("/models", response_model=ModelList)
def list_models(factory: FactoryDep):
    cards = [base_card(factory, m) for m in factory.registry.available()]
    cards += [
        ft_card(factory, m) for m in factory.store.list_models() if not missing_files(factory, m)
    ]
    return {"object": "list", "data": cards}


@router.get("/models/{model_id:path}", response_model=ModelCard)
def retrieve_model(model: ModelDep, factory: FactoryDep):
    if isinstance(model, str):
        return base_card(factory, model)
    if missing_files(factory, model):
        raise gone(gone_message(factory, model))
    return ft_card(factory, model)


@router.delete("/models/{model_id:path}", response_model=ModelDeleted)
def delete_model(model: ModelDep, factory: FactoryDep):
    if isinstance(model, str):
        raise ApiError(400, "Base models cannot be deleted.")
    factory.store.delete_model(model.id)
    factory.predictors.evict(model.id)
    shutil.rmtree(factory.store.model_dir(model), ignore_errors=True)
    return {"id": model.id, "object": "model", "deleted": True}
