"""The ASGI layer in front of the routes: who may call, how much they may send, and errors
that never cost the client its connection.

- **Host allow-list**: the ``Host`` header must name an allowed host (loopback names by
  default), which defeats DNS rebinding: a web page that rebinds its own name to 127.0.0.1
  still sends its own name.
- **Cross-origin guard**: a request whose ``Origin`` is neither the service itself nor an
  allowed origin is refused (403), as is a browser request marked ``Sec-Fetch-Site:
  cross-site``; body-less POSTs (``start``, ``cancel``) refuse form content types, so an HTML
  form on another site cannot drive them.
- **CORS for allowed origins**: a request from an ``--allowed-origin`` gets
  ``Access-Control-Allow-Origin`` with that exact origin, and its preflight (``OPTIONS`` with
  ``Access-Control-Request-Method``) is answered here, before the key check; other origins
  get no CORS headers.
- **Key everywhere**: with an API key set, ``/health``, ``/docs`` and ``/openapi.json`` need it
  too (``/v1`` routes check it as a dependency).
- **Body limits**: a JSON body over ``max_body_bytes`` is refused with 413 (before it is read
  when ``Content-Length`` says so); a body that stalls for ``body_timeout_s`` gets 408.
- **No dropped connections**: an unexpected exception becomes a JSON 500 *here*, and is not
  re-raised to the server. (Starlette's error middleware re-raises after sending the 500, and
  uvicorn then closes the keep-alive connection under the client's next request.)
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers

from .deps import key_matches
from .limits import LOOPBACK_HOSTS

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from .deps import Settings

from .disk import full_message, is_disk_full

log = logging.getLogger(__name__)

__all__ = ["LOOPBACK_HOSTS", "Guard", "host_name"]
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")
UPLOAD_PATH = "/v1/files"
CORS_METHODS = "GET, POST, DELETE, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type"
CORS_MAX_AGE = "600"


class _BodyRefused(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


def host_name(host: str) -> str:
    """``host`` without its port; IPv6 brackets removed; lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Guard:
    def __init__(self, app: ASGIApp, settings: Settings):
        self.app = app
        self.settings = settings
        self.hosts = {host_name(h) for h in settings.allowed_hosts}
        self.origins = {o.rstrip("/").lower() for o in settings.allowed_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refused = self._refusal(scope, headers)
        cors = self._cors(headers) if refused is None or refused[0] in (401, 415) else {}
        if refused is None and cors and _is_preflight(scope, headers):
            await _preflight(send, cors)
            return
        if refused is not None:
            status, detail, extra = refused
            await _respond(send, status, detail, {**extra, **cors})
            return
        if cors:
            send = _with_headers(send, cors)
        state: dict[str, Any] = {"started": False, "refused": None}
        limited = self._limited_receive(scope, headers, receive, state)
        if state["refused"] is not None:  # Content-Length alone says it is too large
            await _respond(send, state["refused"].status, state["refused"].detail, close=True)
            return

        async def tracked_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                if state["started"]:
                    return
                state["started"] = True
                refused = state["refused"]
                if refused is not None:  # the app answered a body we cut short: say why
                    await _respond(send, refused.status, refused.detail, close=True)
                    state["replaced"] = True
                    return
            elif state.get("replaced"):
                return
            await send(message)

        try:
            await self.app(scope, limited, tracked_send)
        except Exception as exc:
            if isinstance(exc, _BodyRefused) or state["refused"] is not None:
                body_error = state["refused"] or exc
                if not state["started"]:
                    await _respond(send, body_error.status, body_error.detail, close=True)
                return
            if is_disk_full(exc):
                log.error("disk full on %s %s: %s", scope["method"], scope["path"], exc)
                if not state["started"]:
                    await _respond(send, 507, full_message(self.settings.data_dir))
                return
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if not state["started"]:
                await _respond(send, 500, "Internal server error.")

    def _cors(self, headers: Headers) -> dict[str, str]:
        """CORS headers for a request from an allowed origin other than the service itself."""
        origin = headers.get("origin")
        if origin is None or origin.rstrip("/").lower() not in self.origins:
            return {}
        if urlsplit(origin).netloc.lower() == headers.get("host", "").lower():
            return {}
        return {"access-control-allow-origin": origin, "vary": "Origin"}

    def _refusal(self, scope: Scope, headers: Headers) -> tuple[int, Any, dict] | None:
        host = headers.get("host", "")
        if host_name(host) not in self.hosts:
            return (
                400,
                (
                    f"Host {host[:100]!r} is not allowed; allowed hosts: "
                    f"{', '.join(sorted(self.hosts))} (serve --allowed-host adds one)."
                ),
                {},
            )
        origin = headers.get("origin")
        if origin is not None:
            same = urlsplit(origin).netloc.lower() == host.lower()
            if not same and origin.rstrip("/").lower() not in self.origins:
                return (
                    403,
                    (
                        f"Cross-origin request refused: origin {origin[:100]!r} is not "
                        "allowed (serve --allowed-origin adds one)."
                    ),
                    {},
                )
        elif headers.get("sec-fetch-site") == "cross-site":
            return 403, "Cross-origin request refused.", {}
        expected = self.settings.api_key
        # a browser never sends the key with a preflight
        if expected and not scope["path"].startswith("/v1/") and not _is_preflight(scope, headers):
            if not key_matches(headers.get("authorization", ""), expected):
                return 401, "Invalid or missing API key.", {"www-authenticate": "Bearer"}
        if scope["method"] == "POST" and scope["path"].endswith(("/start", "/cancel")):
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype in FORM_TYPES:
                return 415, f"This route takes no body; content type {ctype} is refused.", {}
        return None

    def _limited_receive(
        self, scope: Scope, headers: Headers, receive: Receive, state: dict
    ) -> Receive:
        limits = self.settings.limits
        is_upload = scope["method"] == "POST" and scope["path"] == UPLOAD_PATH
        cap = None if is_upload else limits.max_body_bytes
        declared = headers.get("content-length")
        if cap is not None and declared and declared.isdigit() and int(declared) > cap:
            state["refused"] = _too_large(cap)
        seen = 0
        done = False

        async def limited() -> Message:
            nonlocal seen, done
            if (refused := state["refused"]) is not None:
                raise refused
            if done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), limits.body_timeout_s)
            except TimeoutError:
                state["refused"] = _BodyRefused(
                    408, f"The request body stalled for {limits.body_timeout_s:g} s."
                )
                raise state["refused"] from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                done = not message.get("more_body", False)
                if cap is not None and seen > cap:
                    state["refused"] = _too_large(cap)
                    raise state["refused"]
            else:
                done = True
            return message

        return limited


def _is_preflight(scope: Scope, headers: Headers) -> bool:
    return scope["method"] == "OPTIONS" and "access-control-request-method" in headers


def _with_headers(send: Send, extra: dict[str, str]) -> Send:
    """``send`` that adds ``extra`` to the response's headers (replacing any of those names)."""
    names = {k.encode() for k in extra}
    added = [(k.encode(), v.encode()) for k, v in extra.items()]

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
            message = {**message, "headers": kept + added}
        await send(message)

    return sending


async def _preflight(send: Send, cors: dict[str, str]) -> None:
    headers = {
        **cors,
        "access-control-allow-methods": CORS_METHODS,
        "access-control-allow-headers": CORS_HEADERS,
        "access-control-max-age": CORS_MAX_AGE,
        "content-length": "0",
    }
    raw = [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": 204, "headers": raw})
    await send({"type": "http.response.body", "body": b""})


def _too_large(cap: int) -> _BodyRefused:
    return _BodyRefused(
        413,
        f"Request body too large: the limit is {cap / 1024 / 1024:g} MiB (serve --max-body-mb).",
    )


async def _respond(
    send: Send, status: int, detail: Any, extra: dict | None = None, close: bool = False
) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    if close:  # part of the body may still be unread on the connection
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
