"""A full disk, told apart from other failures: 507 for a request, plain advice at start-up."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def is_disk_full(exc: BaseException | None) -> bool:
    """True when ``exc`` (or what caused it) says the device or quota is full."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
            return True
        if isinstance(exc, sqlite3.OperationalError) and "disk is full" in str(exc):
            return True
        if "No space left on device" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def full_message(data_dir: Path) -> str:
    return (
        f"No space left on the device holding the data folder {data_dir}: nothing was kept "
        "of this request. Free some space (old models: DELETE /v1/models/{id}; old files: "
        "DELETE /v1/files/{id}) and try again."
    )
