"""The FastAPI application: routers under ``/v1``, optional bearer auth, ``/health``."""

from __future__ import annotations

import hmac
import json
import logging
import os
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from .errors import redact
from .predictors import PredictorCache
from .store import Store
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


class Factory:
    """Everything the routers share, hung on ``app.state.factory``."""

    def __init__(self, settings: Settings, registry: Registry | None = None):
        self.settings = settings
        self.store = Store(settings.data_dir)
        self.registry = registry or Registry()
        self.worker = Worker(self.store, self.registry)
        self.predictors = PredictorCache(self.store, self.registry)
        self.started = int(time.time())


def get_factory(request: Request) -> Factory:
    return request.app.state.factory


FactoryDep = Annotated[Factory, Depends(get_factory)]


def require_key(request: Request) -> None:
    expected = request.app.state.factory.settings.api_key
    if not expected:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), expected):
        raise HTTPException(
            status_code=401, detail="Invalid or missing API key.",
            headers={"WWW-Authenticate": "Bearer"},
        )


def _server_json(factory: Factory) -> Path:
    return factory.settings.data_dir / "server.json"


def create_app(settings: Settings, registry: Registry | None = None) -> FastAPI:
    from .routers import classifications, embeddings, files, jobs, models

    factory = Factory(settings, registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        factory.worker.start()
        # discover the trainers now (importing torch takes seconds), not on the first request
        threading.Thread(target=factory.registry.trainers, daemon=True).start()
        if settings.url:
            record = {"url": settings.url, "pid": os.getpid(), "data_dir": str(settings.data_dir)}
            _server_json(factory).write_text(json.dumps(record))
        log.info("serving %s on %s", settings.data_dir, settings.url)
        yield
        factory.worker.stop()
        try:
            if json.loads(_server_json(factory).read_text()).get("pid") == os.getpid():
                _server_json(factory).unlink()
        except (OSError, ValueError):
            pass

    app = FastAPI(title="Local Classifier Factory", version="1", lifespan=lifespan)
    app.state.factory = factory

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        detail = jsonable_encoder(redact(list(exc.errors())))
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(status_code=500, content={"detail": "Internal server error."})

    @app.get("/health")
    def health():
        return {"status": "ok", "data_dir": str(settings.data_dir), "pid": os.getpid(),
                "parent_pid": settings.parent_pid, "worker": factory.worker.owner}

    auth = [Depends(require_key)]
    for module in (files, jobs, classifications, embeddings, models):
        app.include_router(module.router, prefix="/v1", dependencies=auth)
    return app
