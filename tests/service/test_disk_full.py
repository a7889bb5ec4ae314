"""A full disk is told apart from other failures (issue 29): 507 naming the data folder, nothing
partial kept, and start-up advice that says to free space (not to restore a backup).

Real ENOSPC, no patching: the service runs in its own mount namespace (``unshare -rm``, as
root or as a user with user namespaces) with its data folder on a small tmpfs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # service processes

ROWS = "".join(
    json.dumps({"text": f"wake me up at {i}", "labels": {"intent": "alarm"}}) + "\n"
    for i in range(40)
)


def serve_on_tmpfs(tmp_path: Path, size: str, prefill_mb: int = 0) -> subprocess.Popen:
    """``helpers.factory serve`` with its data folder on a tmpfs of ``size`` (the mount exists
    only in the service's namespace); ``prefill_mb`` of the tmpfs is taken before it starts."""
    data = tmp_path / "data"
    data.mkdir()
    fill = (
        f"dd if=/dev/zero of={data}/filler bs=1M count={prefill_mb} 2>/dev/null; "
        if (prefill_mb)
        else ""
    )
    with socket.socket() as sock:  # a free port (serve --port 0 does not report the one it got)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    script = (
        f"mount -t tmpfs -o size={size} tmpfs {data} && {fill}"
        f"exec {sys.executable} -m helpers.factory serve --port {port} --device cpu "
        f"--data-dir {data}/factory"
    )
    return subprocess.Popen(
        ["unshare", "-rm", "sh", "-c", script],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def url_of(proc: subprocess.Popen, tmp_path: Path, timeout: float = 60) -> str:
    # the service's server.json is on the tmpfs: read it through the process's own root
    record = Path(f"/proc/{proc.pid}/root") / str(tmp_path / "data/factory/server.json")[1:]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read() if proc.stderr else "service exited")
        try:
            url = json.loads(record.read_text())["url"]
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return url
        except (OSError, ValueError, httpx.HTTPError):
            pass
        time.sleep(0.2)
    raise AssertionError("the service did not start")


def upload(url: str, content: bytes) -> httpx.Response:
    return httpx.post(f"{url}/v1/files", files={"file": ("train.jsonl", content)}, timeout=60)


@pytest.fixture
def namespaces():
    if shutil.which("unshare") is None:
        pytest.fail("these tests need unshare (util-linux) to mount a small tmpfs")
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def test_a_full_disk_answers_507_and_keeps_nothing(tmp_path, namespaces):
    proc = serve_on_tmpfs(tmp_path, "4m")
    namespaces.append(proc)
    url = url_of(proc, tmp_path)
    assert upload(url, ROWS.encode()).status_code == 200
    big = upload(url, ROWS.encode() * 2000)  # ~2 x the free space
    assert big.status_code == 507, big.text
    detail = big.json()["detail"]
    assert "No space left on the device holding the data folder" in detail
    assert str(tmp_path / "data/factory") in detail
    files_dir = Path(f"/proc/{proc.pid}/root") / str(tmp_path / "data/factory/files")[1:]
    assert len(list(files_dir.iterdir())) == 1, "the partial upload was removed"
    listed = httpx.get(f"{url}/v1/files", timeout=30).json()["data"]
    assert len(listed) == 1
    # nothing is left to write with: a small upload and a job are 507 too, never a bare 500
    filler = files_dir.parent / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
    small = upload(url, ROWS.encode())
    assert small.status_code == 507, small.text
    job = httpx.post(
        f"{url}/v1/fine_tuning/jobs",
        json={"model": "tfidf-logreg", "training_files": [{"file_id": listed[0]["id"]}]},
        timeout=30,
    )
    assert job.status_code in (200, 507), job.text  # SQLite may still have a free page
    filler.unlink()  # space again: the service goes on
    assert upload(url, ROWS.encode()).status_code == 200


def test_starting_on_a_full_disk_says_to_free_space(tmp_path, namespaces):
    proc = serve_on_tmpfs(tmp_path, "2m", prefill_mb=2)
    namespaces.append(proc)
    assert proc.wait(60) == 3
    err = proc.stderr.read() if proc.stderr else ""
    assert "is full" in err and "free some space on that device" in err, err
    assert "backup" not in err and "Traceback" not in err
