"""What the routers depend on: settings, the service state, auth and get-or-404 lookups.

Routers take these as FastAPI dependencies (``factory: FactoryDep``, ``job: JobDep``, ...) and
only translate HTTP; the rules live in :mod:`.lifecycle`, :mod:`.worker` and :mod:`.store`.
"""

from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from .errors import NO_FILE, NO_JOB, NO_MODEL, ApiError, not_found
from .lifecycle import Jobs
from .limits import LOOPBACK_HOSTS, Limits
from .predictors import GAP_S, MAX_BATCH, MAX_WAIT_S, PredictorCache
from .store import FileRow, JobRow, ModelRow, Store
from .trainers import Registry
from .worker import Worker

log = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_MB = 512


@dataclass
class Settings:
    data_dir: Path
    api_key: str | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 1024 * 1024
    url: str | None = None  # recorded in server.json for the launcher
    parent_pid: int | None = None  # --exit-with-parent: the service exits soon after it does
    limits: Limits = field(default_factory=Limits)
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS  # Host header values (port ignored)
    allowed_origins: tuple[str, ...] = ()  # cross-origin callers, e.g. "http://localhost:3000"
    batch_max: int = MAX_BATCH  # classification micro-batching: texts per forward pass
    batch_wait_ms: float = MAX_WAIT_S * 1000  # ... the longest a pass waits for more ...
    batch_gap_ms: float = GAP_S * 1000  # ... it starts once no request came for this long


class Factory:
    """The service state every request shares, hung on ``app.state.factory``."""

    def __init__(self, settings: Settings, registry: Registry | None = None):
        self.settings = settings
        self.store = Store(settings.data_dir)
        self.registry = registry or Registry()
        self.worker = Worker(self.store, self.registry, settings.limits)
        self.jobs = Jobs(self.store, self.registry, self.worker, settings.limits)
        self.predictors = PredictorCache(
            self.store,
            self.registry,
            max_batch=settings.batch_max,
            max_wait_s=settings.batch_wait_ms / 1000,
            gap_s=settings.batch_gap_ms / 1000,
        )
        self.started = int(time.time())
        for warning in self.store.check():  # raises StateError when the state is not trusted
            log.warning("%s", warning)


def get_factory(request: Request) -> Factory:
    return request.app.state.factory


FactoryDep = Annotated[Factory, Depends(get_factory)]


def key_matches(authorization: str, expected: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <expected>`` (constant time)."""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    # compare bytes (compare_digest refuses non-ASCII str: a 500 before this was fixed); header
    # values arrive decoded as latin-1, so encoding them back gives the bytes the client sent,
    # which match a non-ASCII key sent as UTF-8
    try:
        given = token.encode("latin-1")
    except UnicodeEncodeError:  # not from an HTTP header
        given = token.encode("utf-8", "surrogateescape")
    return scheme.lower() == "bearer" and hmac.compare_digest(given, expected.encode("utf-8"))


def require_key(request: Request) -> None:
    """Bearer auth when the service has a key."""
    expected = request.app.state.factory.settings.api_key
    if expected and not key_matches(request.headers.get("authorization", ""), expected):
        raise ApiError(401, "Invalid or missing API key.", {"WWW-Authenticate": "Bearer"})


def get_file(file_id: str, factory: FactoryDep) -> FileRow:
    record = factory.store.get_file(file_id)
    if record is None:
        raise not_found(NO_FILE)
    return record


def get_job(job_id: str, factory: FactoryDep) -> JobRow:
    job = factory.store.get_job(job_id)
    if job is None:
        raise not_found(NO_JOB)
    return job


def get_model(model_id: str, factory: FactoryDep) -> ModelRow | str:
    """A fine-tuned model's row, or the canonical id of a base model."""
    model = factory.store.get_model(model_id)
    if model is not None:
        return model
    if factory.registry.get(model_id) is not None:
        return factory.registry.canonical(model_id)
    raise not_found(NO_MODEL)


FileDep = Annotated[FileRow, Depends(get_file)]
JobDep = Annotated[JobRow, Depends(get_job)]
ModelDep = Annotated[ModelRow | str, Depends(get_model)]
