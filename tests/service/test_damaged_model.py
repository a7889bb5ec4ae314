"""Issue 29: a model whose files are damaged answers a clear error naming the model and the
file, and the failed load is remembered until its folder changes (no reload per request)."""

from __future__ import annotations

import os

import httpx
from inproc import train


def test_a_damaged_model_file_is_named_and_not_reloaded_per_request(live, tmp_path):
    with httpx.Client(base_url=live(), timeout=30) as http:
        job = train(http, steps=5)
        model = job["fine_tuned_model"]
        folder = tmp_path / "factory" / "models" / job["id"]
        head = folder / "head_0_W.npy"
        good = head.read_bytes()
        head.write_bytes(b"\x93NUMPY garbage" + bytes(64))  # damaged, in place
        request = {"model": model, "input": ["play some jazz"]}

        first = http.post("/v1/classifications", json=request)
        assert first.status_code == 500, first.text
        detail = first.json()["detail"]
        assert f"Model {model} cannot be loaded: its file head_0_W.npy (in {folder})" in detail
        # repaired in place (the folder is unchanged): the failure is remembered, not retried
        head.write_bytes(good)
        again = http.post("/v1/classifications", json=request)
        assert again.status_code == 500 and again.json()["detail"] == detail
        os.utime(folder)  # the folder changed: loaded again
        assert http.post("/v1/classifications", json=request).status_code == 200
