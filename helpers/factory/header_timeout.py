"""Request headers within a time limit (uvicorn has none).

uvicorn closes an idle keep-alive connection after 5 s, and the body guard (``guards.py``)
answers 408 when a body stalls, but a client that opens a connection and sends nothing, or only
part of a request's headers, is held open for as long as it likes (measured: more than 75 s).
:func:`http_protocol` returns uvicorn's httptools protocol with a timer: it starts when the
connection opens and when a request's first byte arrives, stops when the headers are complete,
and when it fires the client gets a 408 and the connection is closed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def _timeout_response(seconds: float) -> bytes:
    body = json.dumps(
        {"detail": f"The request headers did not arrive within {seconds:g} s."}
    ).encode()
    return (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


def http_protocol(header_timeout_s: float) -> type[HttpToolsProtocol]:
    """uvicorn's ``http`` protocol class, answering 408 to headers slower than
    ``header_timeout_s`` (pass it as ``uvicorn.Config(http=...)``)."""
    if header_timeout_s <= 0:
        raise ValueError(f"header_timeout_s must be > 0, got {header_timeout_s}")

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(header_timeout_s, self._too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.write(_timeout_response(header_timeout_s))
                self.transport.close()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()  # a connection that never sends a byte

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol
