"""Issue 29: an interrupted sweep leaves no ``batch-kernel-*`` folder and no stale
``running.json``; a later run removes those a killed run left, and says so. Real
``python -m helpers.batch`` processes with a tiny notebook, their temp dir under ``tmp_path``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from notebook_files import write_notebook

# writes started.txt, then sleeps nap seconds
NOTEBOOK = (
    'nap = 0\nwork_dir = "x"',
    "import pathlib, time\n"
    "(pathlib.Path(work_dir) / 'started.txt').write_text('1')\n"
    "time.sleep(nap)",
)


def start(tmp_path: Path, *args: str, session: bool = False) -> tuple[subprocess.Popen, Path]:
    temp = tmp_path / "t"
    temp.mkdir(exist_ok=True)
    notebook = write_notebook(tmp_path / "01_nap.ipynb", *NOTEBOOK)
    environ = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    cmd = [sys.executable, "-m", "helpers.batch", "--out", str(tmp_path / "out")]
    process = subprocess.Popen(
        [*cmd, "--notebooks", str(notebook), *args],
        stdout=(tmp_path / "stdout.txt").open("w"),
        stderr=(tmp_path / "stderr.txt").open("w"),
        env={**environ, "TMPDIR": str(temp)},
        start_new_session=session,  # its own process group, as a terminal's foreground job
    )
    return process, temp


def interrupt_when_started(process: subprocess.Popen, started: Path, sig: int, log: Path) -> int:
    try:
        deadline = time.monotonic() + 300
        while not started.exists():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        time.sleep(1)  # in the sleeping cell
        process.send_signal(sig)
        # one signal is enough: it once landed inside papermill's kernel client and was lost
        # (in ~1 of 4 serial runs, even twice in a row); the runner now waits on its own thread
        return process.wait(timeout=60)
    finally:
        process.kill()


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.slow  # a notebook kernel
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_serial_sweep_removes_its_kernel_folder(tmp_path, sig):
    process, temp = start(tmp_path, "--set", "nap=600")
    started = tmp_path / "out" / "default" / "started.txt"
    rc = interrupt_when_started(process, started, sig, tmp_path / "stderr.txt")
    stderr = (tmp_path / "stderr.txt").read_text()
    assert rc == 130, stderr
    assert list(temp.glob("batch-kernel-*")) == [], stderr
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert list(summary["status"]) == ["cancelled"]


@pytest.mark.slow  # a local Dask cluster and a notebook kernel
def test_sigterm_during_a_local_cluster_sweep_leaves_no_running_json(tmp_path):
    process, temp = start(tmp_path, "--set", "nap=600", "--workers", "2")
    point = tmp_path / "out" / "default"
    rc = interrupt_when_started(process, point / "started.txt", signal.SIGTERM, tmp_path / "e")
    stderr = (tmp_path / "stderr.txt").read_text()
    assert rc == 130, stderr
    assert not (point / "running.json").exists(), stderr
    assert list(temp.glob("batch-kernel-*")) == [], stderr


@pytest.mark.slow  # a notebook kernel
def test_ctrl_c_in_a_terminal_reaches_the_kernel_too_and_still_stops_the_run(tmp_path):
    """A terminal sends Ctrl-C to the whole foreground group: the kernel's cell fails at once,
    and the run must still stop instead of going on to the next point."""
    process, temp = start(tmp_path, "--grid", "nap=600,601", session=True)
    started = tmp_path / "out" / "nap-600" / "started.txt"
    try:
        deadline = time.monotonic() + 300
        while not started.exists():
            assert process.poll() is None and time.monotonic() < deadline, list(tmp_path.rglob("*"))
            time.sleep(0.3)
        time.sleep(1)
        os.killpg(process.pid, signal.SIGINT)
        rc = process.wait(timeout=60)
    finally:
        process.kill()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert rc == 130, stderr
    assert not (tmp_path / "out" / "nap-601" / "started.txt").exists(), stderr
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert list(summary["status"]) == ["cancelled", "cancelled"], stderr
    assert list(temp.glob("batch-kernel-*")) == [], stderr


@pytest.mark.slow  # a notebook kernel
def test_a_killed_runs_leftovers_are_removed_and_named(tmp_path):
    pid = dead_pid()
    point = tmp_path / "out" / "default"
    point.mkdir(parents=True)
    record = {"run_id": "old", "worker": "tcp://127.0.0.1:1", "pid": pid, "notebook": "01_nap"}
    (point / "running.json").write_text(json.dumps({**record, "host": socket.gethostname()}))
    (tmp_path / "t").mkdir()
    left = tmp_path / "t" / f"batch-kernel-pid{pid}-abc"
    left.mkdir()
    (left / "kernel-1").write_text("")
    other = tmp_path / "t" / f"batch-kernel-pid{os.getpid()}-abc"  # alive: kept
    other.mkdir()
    process, temp = start(tmp_path)
    assert process.wait(timeout=300) == 0, (tmp_path / "stderr.txt").read_text()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert "default: removed a stale running.json from an interrupted earlier run" in stderr
    assert f"pid {pid}, is gone" in stderr
    assert not (point / "running.json").exists()
    assert not left.exists() and other.exists()
