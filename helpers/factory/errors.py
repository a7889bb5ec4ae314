"""Errors in the shapes the ``mistralai`` SDK expects (FastAPI style), raised by any layer.

:class:`ApiError` carries a status code and a FastAPI-style ``detail``; the application turns it
into ``{"detail": ...}``. The job life cycle and the dependencies raise it without importing
FastAPI's HTTP types, so the rules stay independent of the transport.
"""

from __future__ import annotations

import math
from typing import Any

NO_JOB = "No fine tuning job matches the given query."
NO_FILE = "No file matches the given query."
NO_MODEL = "No model matches the given query."

ECHO_LIMIT = 200  # characters of a refused value echoed back in a 422


class ApiError(Exception):
    def __init__(self, status_code: int, detail: Any, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = headers


def not_found(detail: str) -> ApiError:
    return ApiError(404, detail)


def gone(detail: str) -> ApiError:
    return ApiError(410, detail)


def conflict(detail: str) -> ApiError:
    return ApiError(409, detail)


def damaged(detail: str) -> ApiError:
    """A model's files on this server cannot be loaded: the server's state, not the request."""
    return ApiError(500, detail)


def too_large(detail: str) -> ApiError:
    return ApiError(413, detail)


def invalid(loc: list[str | int], msg: str, value: Any = None) -> ApiError:
    """A 422 in FastAPI's list form, which the SDK parses into ``HTTPValidationError``."""
    return ApiError(
        422, [{"type": "value_error", "loc": loc, "msg": msg, "input": truncate(value)}]
    )


def truncate(value: Any, limit: int = ECHO_LIMIT) -> Any:
    """``value`` with long strings cut to ``limit`` characters (and long lists to 20 items)."""
    if isinstance(value, str):
        return value if len(value) <= limit else f"{value[:limit]}... ({len(value)} characters)"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or Infinity
    if isinstance(value, bytes):
        return truncate(value.decode("utf-8", "replace"), limit)
    if isinstance(value, dict):
        return {truncate(k, limit): truncate(v, limit) for k, v in list(value.items())[:20]}
    if isinstance(value, list | tuple):
        out = [truncate(v, limit) for v in value[:20]]
        return out + [f"... ({len(value)} items)"] if len(value) > 20 else out
    return value


def validation_detail(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic's errors for a 422: secrets redacted, echoed values truncated, at most 20."""
    out = []
    for error in errors[:20]:
        error = dict(error)
        loc = [str(part) for part in error.get("loc", ())]
        if "api_key" in loc or ("integrations" in loc and not isinstance(error.get("input"), dict)):
            error["input"] = "***"  # a key sent with the wrong type is still a key
        error["input"] = truncate(redact(error.get("input")))
        if "ctx" in error:
            error["ctx"] = {k: truncate(str(v)) for k, v in error["ctx"].items()}
        out.append(error)
    return out


def redact(value: Any) -> Any:
    """``value`` with every ``api_key`` replaced, so request echoes never carry secrets."""
    if isinstance(value, dict):
        return {k: "***" if k == "api_key" else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value
