"""The FastAPI application: routers under ``/v1``, optional bearer auth, ``/health``."""

from __future__ import annotations

import json
import logging
import os
import threading
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ..fileio import atomic_write
from .deps import DEFAULT_MAX_UPLOAD_MB, Factory, Settings, require_key
from .errors import ApiError, validation_detail
from .guards import Guard
from .routers import classifications, embeddings, files, jobs, models
from .trainers import Registry

__all__ = ["DEFAULT_MAX_UPLOAD_MB", "Settings", "create_app"]

log = logging.getLogger(__name__)


def _server_json(settings: Settings) -> Path:
    return settings.data_dir / "server.json"


def create_app(settings: Settings, registry: Registry | None = None) -> FastAPI:
    factory = Factory(settings, registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        factory.worker.start()
        # discover the trainers now (importing torch takes seconds), not on the first request
        threading.Thread(target=factory.registry.trainers, daemon=True).start()
        if settings.url:
            record = {"url": settings.url, "pid": os.getpid(), "data_dir": str(settings.data_dir)}
            atomic_write(_server_json(settings), json.dumps(record))
        log.info("serving %s on %s", settings.data_dir, settings.url)
        yield
        factory.worker.stop()
        factory.store.close()
        try:
            if json.loads(_server_json(settings).read_text()).get("pid") == os.getpid():
                _server_json(settings).unlink()
        except (OSError, ValueError):
            pass

    app = FastAPI(title="Local Classifier Factory", version="1", lifespan=lifespan)
    app.state.factory = factory

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return JSONResponse(
            status_code=exc.status_code, content={"detail": exc.detail}, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        detail = jsonable_encoder(validation_detail(list(exc.errors())))
        return JSONResponse(status_code=422, content={"detail": detail})

    # unexpected exceptions become a 500 in Guard, which keeps the connection open
    app.add_middleware(Guard, settings=settings)

    @app.get("/health")
    def health():
        return {
            "status": "ok",
            "data_dir": str(settings.data_dir),
            "pid": os.getpid(),
            "parent_pid": settings.parent_pid,
            "worker": factory.worker.owner,
        }

    auth = [Depends(require_key)]
    for module in (files, jobs, classifications, embeddings, models):
        app.include_router(module.router, prefix="/v1", dependencies=auth)
    return app
