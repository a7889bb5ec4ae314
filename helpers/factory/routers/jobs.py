"""``/v1/fine_tuning/jobs``: create, list, get, start and cancel classifier fine-tuning jobs."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query

from ..deps import Factory, FactoryDep, JobDep
from ..errors import invalid
from ..schemas import MAX_PAGE, JobCreate, JobDetailsOut, JobList, JobOut, JobStatus
from ..store import JobRow

router = APIRouter(prefix="/fine_tuning", tags=["fine_tuning"])


def job_out(factory: Factory, job: JobRow, detailed: bool = True) -> dict[str, Any]:
    row = asdict(job)
    out = {k: row[k] for k in JobOut.model_fields if k in row}
    if detailed:
        out["events"] = [asdict(e) for e in factory.store.events(job.id)]
        out["checkpoints"] = [asdict(c) for c in factory.store.checkpoints(job.id)]
    return out


@router.post("/jobs", response_model=JobOut)
def create_job(body: JobCreate, factory: FactoryDep):
    return job_out(factory, factory.jobs.create(body), detailed=False)


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
    page: int = Query(0, ge=0, le=MAX_PAGE),
    page_size: int = Query(100, ge=1, le=10_000),
    model: str | None = None,
    status: JobStatus | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
    suffix: str | None = None,
):
    rows, total = factory.store.list_jobs(
        page,
        page_size,
        status,
        factory.registry.canonical(model) if model else None,
        _timestamp(created_after, "created_after"),
        _timestamp(created_before, "created_before"),
        suffix,
    )
    return {
        "data": [job_out(factory, r, detailed=False) for r in rows],
        "object": "list",
        "total": total,
    }


@router.get("/jobs/{job_id}", response_model=JobDetailsOut)
def get_job(job: JobDep, factory: FactoryDep):
    return job_out(factory, job)


@router.post("/jobs/{job_id}/start", response_model=JobDetailsOut)
def start_job(job: JobDep, factory: FactoryDep):
    return job_out(factory, factory.jobs.start(job.id))


@router.post("/jobs/{job_id}/cancel", response_model=JobDetailsOut)
def cancel_job(job: JobDep, factory: FactoryDep):
    return job_out(factory, factory.jobs.cancel(job.id))
