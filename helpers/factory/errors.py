"""HTTP errors in the shapes the ``mistralai`` SDK expects (FastAPI style)."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException

NO_JOB = "No fine tuning job matches the given query."
NO_FILE = "No file matches the given query."
NO_MODEL = "No model matches the given query."


def not_found(detail: str) -> HTTPException:
    return HTTPException(status_code=404, detail=detail)


def conflict(detail: str) -> HTTPException:
    return HTTPException(status_code=409, detail=detail)


def invalid(loc: list[str | int], msg: str, value: Any = None) -> HTTPException:
    """A 422 in FastAPI's list form, which the SDK parses into ``HTTPValidationError``."""
    return HTTPException(
        status_code=422,
        detail=[{"type": "value_error", "loc": loc, "msg": msg, "input": value}],
    )


def redact(value: Any) -> Any:
    """``value`` with every ``api_key`` replaced, so request echoes never carry secrets."""
    if isinstance(value, dict):
        return {k: "***" if k == "api_key" else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value
