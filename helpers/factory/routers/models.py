"""``/v1/models``: the base models this machine can fine-tune, and the fine-tuned models."""

from __future__ import annotations

import shutil

from fastapi import APIRouter, HTTPException

from ..app import Factory, FactoryDep
from ..errors import NO_MODEL, not_found
from ..schemas import ModelCard, ModelDeleted, ModelList
from ..trainers import ENCODERS

router = APIRouter(tags=["models"])


def base_card(factory: Factory, model_id: str) -> dict:
    trainer = factory.registry.trainers()[model_id]
    return {
        "id": model_id, "type": "base", "created": factory.started,
        "description": trainer.description,
        "max_context_length": getattr(trainer, "max_length", None)
        or getattr(trainer, "max_context_length", 512),
        "aliases": [ENCODERS[model_id]] if model_id in ENCODERS else [],
        "capabilities": {"fine_tuning": True, "classification": True},
    }


def ft_card(factory: Factory, model: dict) -> dict:
    trainer = factory.registry.get(model["root"])
    return {
        "id": model["id"], "type": "fine-tuned", "created": model["created"],
        "job": model["job_id"], "root": model["root"], "archived": bool(model["archived"]),
        "description": f"{model['root']} fine-tuned by job {model['job_id']}",
        "max_context_length": getattr(trainer, "max_length", None)
        or getattr(trainer, "max_context_length", 512),
        "capabilities": {"fine_tuning": False, "classification": True},
        "classifier_targets": model["classifier_targets"],
    }


@router.get("/models", response_model=ModelList)
def list_models(factory: FactoryDep):
    cards = [base_card(factory, m) for m in factory.registry.available()]
    cards += [ft_card(factory, m) for m in factory.store.list_models()]
    return {"object": "list", "data": cards}


@router.get("/models/{model_id:path}", response_model=ModelCard)
def retrieve_model(model_id: str, factory: FactoryDep):
    model = factory.store.get_model(model_id)
    if model is not None:
        return ft_card(factory, model)
    if factory.registry.get(model_id) is not None:
        return base_card(factory, factory.registry.canonical(model_id))
    raise not_found(NO_MODEL)


@router.delete("/models/{model_id:path}", response_model=ModelDeleted)
def delete_model(model_id: str, factory: FactoryDep):
    model = factory.store.get_model(model_id)
    if model is None:
        if factory.registry.get(model_id) is not None:
            raise HTTPException(status_code=400, detail="Base models cannot be deleted.")
        raise not_found(NO_MODEL)
    factory.store.delete_model(model_id)
    factory.predictors.evict(model_id)
    shutil.rmtree(factory.store.data_dir / model["path"], ignore_errors=True)
    return {"id": model_id, "object": "model", "deleted": True}
