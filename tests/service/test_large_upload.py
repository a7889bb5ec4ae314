"""A 100 MB training file is streamed to disk by the service, not held in its memory."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from mistralai.client import Mistral

from helpers.factory import start_local_factory, stop_local_factory

pytestmark = pytest.mark.slow


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (``VmHWM``), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def test_a_100_mb_upload_is_streamed_to_disk(tmp_path):
    row = json.dumps({"text": "wake me up at seven tomorrow " * 8, "labels": {"intent": "alarm"}})
    path = tmp_path / "big.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(100 * 2**20 // (len(row) + 1) + 1):
            f.write(row + "\n")
    size = path.stat().st_size
    assert size >= 100 * 2**20

    data_dir = tmp_path / "factory"
    url = start_local_factory(data_dir, device="cpu")
    try:
        pid = json.loads((data_dir / "server.json").read_text())["pid"]
        client = Mistral(api_key="local", server_url=url)
        client.models.list()  # the service has discovered its trainers: its memory has settled
        before = peak_rss_mib(pid)
        with open(path, "rb") as f:
            uploaded = client.files.upload(file={"file_name": "big.jsonl", "content": f})
        after = peak_rss_mib(pid)
        assert uploaded.size_bytes == size
        stored = next((data_dir / "files").glob(f"{uploaded.id}*"))
        assert stored.stat().st_size == size
        assert after - before < 40, f"peak memory grew {after - before:.0f} MiB for 100 MiB"
    finally:
        stop_local_factory(data_dir)


def multipart(fields: int, value_bytes: int, boundary: str = "b0undary") -> bytes:
    """A form with ``fields`` extra fields of ``value_bytes`` each, then a small file."""
    value = b"v" * value_bytes
    parts = [
        b'--%s\r\nContent-Disposition: form-data; name="f%d"\r\n\r\n%s\r\n'
        % (boundary.encode(), i, value)
        for i in range(fields)
    ]
    parts.append(
        b'--%s\r\nContent-Disposition: form-data; name="file"; filename="t.jsonl"\r\n'
        b"Content-Type: application/jsonl\r\n\r\n"
        b'{"text": "hi", "labels": {"intent": "greet"}}\n\r\n--%s--\r\n'
        % (boundary.encode(), boundary.encode())
    )
    return b"".join(parts)


def test_30000_form_fields_are_refused_with_bounded_memory(tmp_path):
    import httpx

    data_dir = tmp_path / "factory"
    url = start_local_factory(data_dir, device="cpu")
    try:
        pid = json.loads((data_dir / "server.json").read_text())["pid"]
        Mistral(api_key="local", server_url=url).models.list()
        before = peak_rss_mib(pid)
        body = multipart(30_000, 1024)  # 31 MB of form fields
        answer = httpx.post(
            f"{url}/v1/files",
            content=body,
            headers={"Content-Type": "multipart/form-data; boundary=b0undary"},
            timeout=120,
        )
        after = peak_rss_mib(pid)
        assert answer.status_code == 413, answer.text
        assert "more than 32 form fields" in answer.text
        assert after - before < 40, f"peak memory grew {after - before:.0f} MiB"
        print(f"30,000 fields ({len(body) / 2**20:.0f} MiB): peak RSS +{after - before:.1f} MiB")
        assert not list((data_dir / "files").glob("*"))  # nothing kept
    finally:
        stop_local_factory(data_dir)


def distinct_rows(path: Path, mib: float) -> None:
    """Distinct utterances (random words, 16 intents) up to ``mib`` MiB."""
    import random

    rng = random.Random(0)
    words = [f"w{i}" for i in range(50_000)]
    with open(path, "w", encoding="utf-8") as f:
        while f.tell() < mib * 2**20:
            text = " ".join(rng.choices(words, k=rng.randint(4, 12)))
            label = f"intent_{rng.randrange(16)}"
            f.write(json.dumps({"text": text, "labels": {"intent": label}}) + "\n")


def test_validation_memory_is_bounded_and_the_job_size_capped(tmp_path):
    data_dir = tmp_path / "factory"
    url = start_local_factory(data_dir, device="cpu", extra_args=["--max-training-mb", "30"])
    try:
        pid = json.loads((data_dir / "server.json").read_text())["pid"]
        client = Mistral(api_key="local", server_url=url)
        client.models.list()
        path = tmp_path / "train.jsonl"
        distinct_rows(path, 25)
        with open(path, "rb") as f:
            small = client.files.upload(file={"file_name": "train.jsonl", "content": f})
        before = peak_rss_mib(pid)
        job = client.fine_tuning.jobs.create(
            model="tfidf-logreg",
            job_type="classifier",
            training_files=[{"file_id": small.id, "weight": 1}],
            hyperparameters={"training_steps": 10},
            auto_start=False,
        )
        while job.status in ("QUEUED", "VALIDATING"):
            time.sleep(0.5)
            job = client.fine_tuning.jobs.get(job_id=job.id)
        grew = peak_rss_mib(pid) - before
        print(f"validating 25 MiB: peak RSS +{grew:.0f} MiB")
        assert job.status == "VALIDATED"
        assert grew < 250, f"validation of 25 MiB took {grew:.0f} MiB (was ~1,100)"
        # two files of 25 MiB: over the job cap, refused at once, before any reading
        import httpx

        answer = httpx.post(
            f"{url}/v1/fine_tuning/jobs",
            json={
                "model": "tfidf-logreg",
                "training_files": [{"file_id": small.id}],
                "validation_files": [small.id],
            },
            timeout=30,
        )
        assert answer.status_code == 422, answer.text
        assert "at most 30 MiB" in answer.text and "--max-training-mb" in answer.text
    finally:
        stop_local_factory(data_dir)
