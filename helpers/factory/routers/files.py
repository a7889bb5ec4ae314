"""``/v1/files``: upload (streamed to disk), list, retrieve, delete, download."""

from __future__ import annotations

import mimetypes
import os
import uuid
from dataclasses import asdict

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from ..deps import FactoryDep, FileDep
from ..disk import is_disk_full
from ..errors import NO_FILE, ApiError, invalid, not_found, too_large
from ..schemas import MAX_PAGE, FileDeleted, FileList, FileOut, FileRetrieveOut
from ..store import now
from ..uploads import UploadParser

router = APIRouter(tags=["files"])


@router.post("/files", response_model=FileOut)
async def upload_file(request: Request, factory: FactoryDep):
    store = factory.store
    limit = factory.settings.max_upload_bytes
    file_id = str(uuid.uuid4())
    partial = store.partial_path(file_id)
    try:
        parser = UploadParser(request.headers.get("content-type", ""), partial, limit)
    except ValueError as exc:
        raise invalid(["body"], str(exc)) from None
    try:
        async for chunk in request.stream():
            parser.write(chunk)  # past the limit the rest of the body is read and dropped
        parser.finish()
    except Exception as exc:
        parser.discard()
        if is_disk_full(exc):
            raise  # the guard answers 507 naming the data folder
        raise invalid(["body"], f"malformed multipart body: {exc}") from None
    if parser.refused:
        parser.discard()
        raise too_large(
            f"Form too large: {parser.refused}; send the file and at most a few fields."
        )
    if parser.too_large:
        raise too_large(f"File too large: the limit is {limit / 1024 / 1024:g} MB per file.")
    if not parser.got_file:
        parser.discard()
        raise ApiError(
            422,
            [{"type": "missing", "loc": ["body", "file"], "msg": "Field required", "input": None}],
        )
    try:
        os.replace(partial, store.file_path(file_id))
        record = _record(store, parser, file_id)
    except BaseException:
        parser.discard()
        store.file_path(file_id).unlink(missing_ok=True)
        raise
    return asdict(record)


def _record(store, parser: UploadParser, file_id: str):
    filename = parser.filename or "upload.jsonl"
    guessed = (
        "application/jsonl" if filename.endswith(".jsonl") else mimetypes.guess_type(filename)[0]
    )
    return store.add_file(
        {
            "id": file_id,
            "filename": filename,
            "bytes": parser.size,
            "created_at": now(),
            "purpose": parser.fields.get("purpose") or "fine-tune",
            "sample_type": "instruct",
            "source": "upload",
            "num_lines": parser.lines,
            "mimetype": guessed or parser.part_type or "application/octet-stream",
            "visibility": parser.fields.get("visibility") or "workspace",
        }
    )


@router.get("/files", response_model=FileList)
def list_files(
    factory: FactoryDep,
    page: int = Query(0, ge=0, le=MAX_PAGE),
    page_size: int = Query(100, ge=1, le=10_000),
    include_total: bool = True,
    purpose: str | None = None,
    search: str | None = None,
):
    rows, total = factory.store.list_files(page, page_size, purpose, search)
    return {
        "data": [asdict(r) for r in rows],
        "object": "list",
        "total": total if include_total else None,
    }


@router.get("/files/{file_id}", response_model=FileRetrieveOut)
def retrieve_file(file: FileDep):
    return {**asdict(file), "deleted": False}


@router.delete("/files/{file_id}", response_model=FileDeleted)
def delete_file(file: FileDep, factory: FactoryDep):
    factory.store.delete_file(file.id)
    return {"id": file.id, "object": "file", "deleted": True}


@router.get("/files/{file_id}/content", response_class=FileResponse)
def download_file(file: FileDep, factory: FactoryDep):
    path = factory.store.file_path(file.id)
    if not path.exists():
        raise not_found(NO_FILE)
    return FileResponse(path, media_type="application/octet-stream", filename=file.filename)
