"""``/v1/fine_tuning/jobs``: create, list, get, start and cancel classifier fine-tuning jobs."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query

from ..app import Factory, FactoryDep
from ..errors import NO_JOB, conflict, invalid, not_found
from ..schemas import JobCreate, JobDetailsOut, JobList, JobOut, JobStatus
from ..store import TERMINAL
from ..trainers import hyperparameters_with_defaults

router = APIRouter(prefix="/fine_tuning", tags=["fine_tuning"])


def job_out(factory: Factory, job: dict, detailed: bool = True) -> dict:
    out = {k: job[k] for k in JobOut.model_fields if k in job}
    out["auto_start"] = bool(job["auto_start"])
    if detailed:
        out["events"] = factory.store.events(job["id"])
        out["checkpoints"] = factory.store.checkpoints(job["id"])
    return out


def refusal(model: str, available: list[str]) -> str:
    hosted = ""
    if "ministral" in model or "mistral" in model:
        hosted = (
            f"{model} is a Mistral-hosted model whose weights are not available locally, and "
            "Mistral retired hosted classifier training in July 2026. "
        )
    return (
        f"{hosted}Model {model!r} cannot be fine-tuned on this machine; "
        f"use one of: {', '.join(available)}."
    )


@router.post("/jobs", response_model=JobOut)
def create_job(body: JobCreate, factory: FactoryDep):
    if body.job_type == "completion":
        raise invalid(["body", "job_type"], "the local Classifier Factory only runs classifier "
                      "jobs (job_type='classifier')", body.job_type)
    trainer = factory.registry.get(body.model)
    if trainer is None:
        raise invalid(["body", "model"], refusal(body.model, factory.registry.available()),
                      body.model)
    if not body.training_files:
        raise invalid(["body", "training_files"], "At least one training file is required.", [])
    for kind, ids in (("Training", [f.file_id for f in body.training_files]),
                      ("Validation", body.validation_files or [])):
        for file_id in ids:
            if factory.store.get_file(file_id) is None:
                raise not_found(f"{kind} file {file_id} does not exist.")
    integrations = None
    if body.integrations:
        integrations = [
            {"type": "wandb", "project": i.project, "name": i.name, "run_name": i.run_name,
             "url": None}
            for i in body.integrations
        ]
    requested = body.hyperparameters.model_dump()
    job = factory.store.create_job({
        "model": factory.registry.canonical(body.model),
        "auto_start": int(body.auto_start),
        "training_files": [f.file_id for f in body.training_files],
        "validation_files": body.validation_files,
        "hyperparameters": hyperparameters_with_defaults(trainer, requested),
        "suffix": body.suffix,
        "integrations": integrations,
        "requested_targets": [t.model_dump() for t in body.classifier_targets or []] or None,
        "metadata": {"cost": 0.0, "cost_currency": "EUR"},
    })
    if body.integrations:
        factory.worker.remember_secret(job["id"], body.integrations[0].api_key)
    factory.worker.notify()
    return job_out(factory, job, detailed=False)


def _timestamp(value: str | None, name: str) -> int | None:
    if not value:
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        raise invalid(["query", name], "expected an ISO-8601 date-time", value) from None


@router.get("/jobs", response_model=JobList)
def list_jobs(
    factory: FactoryDep,
    page: int = Query(0, ge=0),
    page_size: int = Query(100, ge=1, le=10_000),
    model: str | None = None,
    status: JobStatus | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
    suffix: str | None = None,
):
    rows, total = factory.store.list_jobs(
        page, page_size, status, factory.registry.canonical(model) if model else None,
        _timestamp(created_after, "created_after"), _timestamp(created_before, "created_before"),
        suffix,
    )
    return {"data": [job_out(factory, r, detailed=False) for r in rows], "object": "list",
            "total": total}


def _job(factory: Factory, job_id: str) -> dict:
    job = factory.store.get_job(job_id)
    if job is None:
        raise not_found(NO_JOB)
    return job


@router.get("/jobs/{job_id}", response_model=JobDetailsOut)
def get_job(job_id: str, factory: FactoryDep):
    return job_out(factory, _job(factory, job_id))


@router.post("/jobs/{job_id}/start", response_model=JobDetailsOut)
def start_job(job_id: str, factory: FactoryDep):
    _job(factory, job_id)
    if not factory.worker.start_job(job_id):
        status = _job(factory, job_id)["status"]
        raise conflict(f"Job {job_id} cannot be started: its status is {status}; only VALIDATED "
                       "jobs can be started.")
    return job_out(factory, _job(factory, job_id))


@router.post("/jobs/{job_id}/cancel", response_model=JobDetailsOut)
def cancel_job(job_id: str, factory: FactoryDep):
    store = factory.store
    for _ in range(5):  # retry if the worker moved the job meanwhile
        status = _job(factory, job_id)["status"]
        if status in TERMINAL or status == "CANCELLATION_REQUESTED":
            break
        if status == "RUNNING":
            if store.transition(job_id, ["RUNNING"], "CANCELLATION_REQUESTED"):
                break
        elif store.transition(job_id, [status], "CANCELLED"):
            factory.worker.forget_secret(job_id)
            break
    return job_out(factory, _job(factory, job_id))
