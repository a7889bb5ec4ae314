"""POST /v1/files bounds the form around the file: field count and total bytes (413); part
headers are bounded by python-multipart itself (422 naming the limit)."""

from __future__ import annotations

import pytest
from test_large_upload import multipart

from helpers.factory import uploads

HEADERS = {"Content-Type": "multipart/form-data; boundary=b0undary"}


def post(api, body: bytes):
    return api.post("/v1/files", content=body, headers=HEADERS)


def test_a_few_fields_are_fine(api):
    answer = post(api, multipart(3, 100))
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("fields", "size", "message"),
    [
        (uploads.MAX_FIELDS + 1, 10, "more than 32 form fields"),
        (8, 60 * 1024, "the form fields exceed 256 KB in all"),
    ],
)
def test_too_many_or_too_big_fields_are_413(api, fields, size, message):
    answer = post(api, multipart(fields, size))
    assert answer.status_code == 413 and message in answer.text, answer.text
    assert api.get("/v1/files").json()["data"] == []  # nothing stored


def test_huge_part_headers_are_refused_by_the_parser(api):
    pads = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 1000) for i in range(40))  # 40 KB
    body = (
        b'--b0undary\r\nContent-Disposition: form-data; name="x"\r\n'
        + pads
        + b"\r\nv\r\n"
        + multipart(0, 0)
    )
    answer = post(api, body)
    assert answer.status_code == 422 and "Maximum header count exceeded" in answer.text
