"""Streaming ``multipart/form-data`` upload: the file part goes straight to disk.

The body is never held in memory, and once the file passes the size limit the rest of the body
is read and discarded (so the client still receives a clean ``413``) without being written.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import BinaryIO

from python_multipart import MultipartParser
from python_multipart.multipart import MultipartState, parse_options_header

MAX_FIELD_BYTES = 64 * 1024  # one form field's value (longer values are cut)
MAX_FIELDS = 32  # form fields besides the file (the SDK sends one or two)
MAX_FIELDS_BYTES = 256 * 1024  # all form fields' values together
MAX_FILENAME_CHARS = 200


def sanitize_filename(name: str | None) -> str:
    """Basename only, no control or format characters, at most 200 characters."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip().strip(".")
    if not name:
        return "upload.jsonl"
    if len(name) > MAX_FILENAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            name = stem[: MAX_FILENAME_CHARS - len(ext) - 1] + "." + ext
        else:
            name = name[:MAX_FILENAME_CHARS]
    return name


class UploadParser:
    """Feed body chunks with :meth:`write`; the part named ``file`` is written to ``dest``."""

    def __init__(self, content_type: str, dest: Path, limit: int):
        ctype, params = parse_options_header(content_type)
        if ctype != b"multipart/form-data" or b"boundary" not in params:
            raise ValueError("expected a multipart/form-data body")
        self.dest = dest
        self.limit = limit
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.part_type: str | None = None
        self.size = 0
        self.lines = 0
        self.too_large = False
        self.refused: str | None = None  # why the form (not the file) broke a limit
        self._parts = 0
        self._fields_bytes = 0
        self._last_byte = b""
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._name: str | None = None
        self._value = bytearray()
        self._out: BinaryIO | None = None
        self._parser = MultipartParser(
            params[b"boundary"],
            {
                "on_part_begin": self._part_begin,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                # python-multipart bounds a part's header count and sizes itself
                "on_header_field": lambda d, s, e: self._header_field.extend(d[s:e]),
                "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
            },
        )

    @property
    def got_file(self) -> bool:
        return self.filename is not None

    def write(self, chunk: bytes) -> None:
        self._parser.write(chunk)

    def finish(self) -> None:
        self._parser.finalize()
        self.close()
        if self._parser.state != MultipartState.END:
            raise ValueError("the body ends before its closing boundary (incomplete upload)")
        if self.size and self._last_byte != b"\n":
            self.lines += 1

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def discard(self) -> None:
        self.close()
        self.dest.unlink(missing_ok=True)

    def _refuse(self, why: str) -> None:
        if self.refused is None:
            self.refused = why

    def _part_begin(self) -> None:
        self._headers = {}
        self._name = None
        self._value = bytearray()
        self._parts += 1
        if self._parts > MAX_FIELDS + 1:
            self._refuse(f"more than {MAX_FIELDS} form fields besides the file")

    def _header_end(self) -> None:
        if self.refused is None:
            self._headers[self._header_field.decode("latin-1").lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get("content-disposition", b""))
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        if self._name == "file" and self._out is None and not self.got_file:
            raw = params.get(b"filename", b"")
            self.filename = sanitize_filename(raw.decode("utf-8", "replace"))
            self.part_type = self._headers.get("content-type", b"").decode("latin-1") or None
            fd = os.open(self.dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            self._out = os.fdopen(fd, "wb")  # closed in finish() or discard()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._out is None:
            if self._name != "file" and self.refused is None:
                self._fields_bytes += len(chunk)
                if self._fields_bytes > MAX_FIELDS_BYTES:
                    self._refuse(f"the form fields exceed {MAX_FIELDS_BYTES // 1024} KB in all")
                elif len(self._value) < MAX_FIELD_BYTES:
                    self._value.extend(chunk[: MAX_FIELD_BYTES - len(self._value)])
            return
        self.size += len(chunk)
        if self.size > self.limit:
            self.too_large = True
            self.discard()
            return
        if chunk:
            self._out.write(chunk)
            self.lines += chunk.count(b"\n")
            self._last_byte = chunk[-1:]

    def _part_end(self) -> None:
        if self._name == "file" and self._out is not None:
            self._out.flush()
            os.fsync(self._out.fileno())
            self.close()
        elif self._name and self._name != "file" and self.refused is None:
            self.fields[self._name] = self._value.decode("utf-8", "replace")
        self._value = bytearray()
