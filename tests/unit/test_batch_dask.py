"""helpers.batch on a real Dask scheduler (a local cluster of 2 worker processes reached through
its address, as a Slurm or Kubernetes one would be), with tiny throwaway notebooks."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from distributed import LocalCluster  # the [distributed] extra, installed by `make install`
from notebook_files import write_notebook

from helpers.batch import _marker_problem

# 01 records what it saw, kills the Dask worker that runs it (its kernel's parent) once when
# kill is True and alpha == 3, and sleeps nap seconds when alpha > 1; 02 writes the metrics.
NOTEBOOK_A = (
    'alpha = 1\nkill = False\nnap = 0\nwork_dir = "x"',
    "import json, os, pathlib, signal, time\n"
    "work = pathlib.Path(work_dir)\n"
    "count = work / 'count_a.txt'\n"
    "count.write_text(str(int(count.read_text()) + 1 if count.exists() else 1))\n"
    "names = ('INTENT_TORCH_THREADS', 'OMP_NUM_THREADS', 'MALLOC_TRIM_THRESHOLD_')\n"
    "seen = {k: os.environ.get(k) for k in names}\n"
    "(work / 'seen_a.json').write_text(json.dumps(seen))\n"
    "if kill and alpha == 3 and not (work / 'killed').exists():\n"
    "    (work / 'killed').write_text(str(os.getppid()))\n"
    "    os.kill(os.getppid(), signal.SIGKILL)\n"
    "    time.sleep(60)\n"
    "if alpha > 1:\n"
    "    time.sleep(nap)",
)
NOTEBOOK_B = (  # ends like a lesson: helpers.notebook.record
    'alpha = 1\nbeta = 0.5\nwork_dir = "x"',
    "import pathlib\n"
    "from helpers.notebook import record\n"
    "results = {'accuracy': alpha / 10 + beta, 'macro_f1': alpha / 20, 'train_seconds': 1.5}\n"
    "record(results, pathlib.Path(work_dir) / 'metrics.json')",
)
SAME = [
    "run",
    "alpha",
    "beta",
    "status",
    "accuracy",
    "macro_f1",
    "train_seconds",
    "failed_notebook",
    "error",
]


@pytest.fixture(scope="module")
def notebooks(module_tmp) -> str:
    folder = module_tmp("nbs")
    paths = [
        write_notebook(folder / "01_a.ipynb", *NOTEBOOK_A),
        write_notebook(folder / "02_b.ipynb", *NOTEBOOK_B),
    ]
    return ",".join(map(str, paths))


@pytest.fixture(scope="module")
def scheduler():
    """A real scheduler with 2 worker processes of 1 thread; its nannies restart dead workers."""
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        yield cluster.scheduler_address


def batch(*args: str, env: dict | None = None, prelude: str = "") -> subprocess.CompletedProcess:
    """``python -m helpers.batch ARGS`` in a fresh interpreter; it prints the Dask modules it
    imported at exit."""
    code = (
        f"{prelude}\nimport atexit, runpy, sys\n"
        "atexit.register(lambda: print('dask modules:', sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('dask', 'distributed'))))\n"
        f"sys.argv = ['helpers.batch', *{list(args)!r}]\n"
        "runpy.run_module('helpers.batch', run_name='__main__')"
    )
    environ = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=600,
        env={**environ, **(env or {})},
    )


@pytest.mark.slow  # a local Dask cluster
def test_the_local_cluster_and_its_dashboard_listen_on_loopback_only():
    from helpers.batch import _dask_client

    client = _dask_client(2, None)
    try:
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
        assert client.dashboard_link.startswith("http://127.0.0.1:")
        # the address the dashboard's sockets are bound to (":0" bound 0.0.0.0: every interface)
        http = client._batch_cluster.scheduler.http_server
        assert {sock.getsockname()[0] for sock in http._sockets.values()} == {"127.0.0.1"}
        workers = client.scheduler_info()["workers"]
        assert len(workers) == 2 and all(w.startswith("tcp://127.0.0.1:") for w in workers)
    finally:
        client.close()
        client._batch_cluster.close()


@pytest.mark.slow  # a Dask cluster and notebook kernels
def test_cluster_sweep_matches_a_serial_run(notebooks, scheduler, tmp_path):
    grid = ["--grid", "alpha=1,2", "--grid", "beta=0.5,1.0", "--notebooks", notebooks]
    serial = batch("--out", str(tmp_path / "serial"), *grid)
    assert serial.returncode == 0, serial.stderr
    assert "dask modules: []" in serial.stdout  # the default path never imports Dask
    # the scheduler's address from the environment, as on a cluster
    dask = batch("--out", str(tmp_path / "dask"), *grid, env={"DASK_SCHEDULER_ADDRESS": scheduler})
    assert dask.returncode == 0, dask.stderr
    assert f"4 points on {scheduler}" in dask.stderr
    one, two = (pd.read_csv(tmp_path / name / "summary.csv") for name in ("serial", "dask"))
    pd.testing.assert_frame_equal(one[SAME], two[SAME])
    assert set(one["worker"]) == {"local"}
    assert two["worker"].str.startswith("tcp://127.0.0.1:").all()
    assert (tmp_path / "dask" / "summary.png").stat().st_size > 0
    assert "| alpha-2__beta-1.0 | 2 | 1 | ok |" in (tmp_path / "dask" / "summary.md").read_text()
    # each point's kernel got the worker's share of the cores (2 worker processes here), and
    # not the malloc setting Dask's nanny gives its workers (it slows training ~1.5x)
    cores = len(os.sched_getaffinity(0))
    seen = json.loads((tmp_path / "dask" / "alpha-1__beta-0.5" / "seen_a.json").read_text())
    share = str(max(1, cores // 2))
    assert seen == {
        "INTENT_TORCH_THREADS": share,
        "OMP_NUM_THREADS": share,
        "MALLOC_TRIM_THRESHOLD_": None,
    }
    assert not list((tmp_path / "dask").glob(".batch-*"))  # the storage marker is removed


@pytest.mark.slow  # a Dask cluster and notebook kernels
def test_killed_worker_fails_its_point_only_and_a_rerun_finishes_it(notebooks, scheduler, tmp_path):
    out = tmp_path / "kill"
    args = [
        "--out",
        str(out),
        "--grid",
        "alpha=1,2,3,4",
        "--set",
        "kill=True",
        "--notebooks",
        notebooks,
        "--cluster",
        scheduler,
    ]
    first = batch(*args)
    assert first.returncode == 1, first.stderr
    summary = pd.read_csv(out / "summary.csv").set_index("run")
    assert list(summary["status"]) == ["ok", "ok", "failed", "ok"]
    killed = summary.loc["alpha-3"]
    dead_pid = (out / "alpha-3" / "killed").read_text()
    assert killed["failed_notebook"] == "01_a.ipynb"
    assert "died while running this point" in killed["error"] and dead_pid in killed["error"]
    assert killed["worker"].startswith("tcp://")
    assert pd.isna(killed["accuracy"])

    second = batch(*args)
    assert second.returncode == 0, second.stderr
    summary = pd.read_csv(out / "summary.csv").set_index("run")
    assert (summary["status"] == "ok").all()
    assert summary.loc["alpha-3", "accuracy"] == pytest.approx(0.8)
    for run, count in [("alpha-1", "1"), ("alpha-2", "1"), ("alpha-3", "2"), ("alpha-4", "1")]:
        assert (out / run / "count_a.txt").read_text() == count  # finished points kept
    assert "alpha-1: ok (done earlier)" in second.stdout  # progress lines


@pytest.mark.slow  # a Dask cluster and notebook kernels
def test_workers_1_stays_in_process_and_the_missing_extra_is_named(notebooks, tmp_path):
    args = ["--out", str(tmp_path / "one"), "--grid", "alpha=1", "--notebooks", notebooks]
    one = batch(*args, "--workers", "1")
    assert one.returncode == 0, one.stderr
    assert "dask modules: []" in one.stdout
    assert pd.read_csv(tmp_path / "one" / "summary.csv")["worker"].tolist() == ["local"]
    # as if dask[distributed] were not installed
    missing = batch(
        *args, "--workers", "2", prelude="import sys; sys.modules['distributed'] = None"
    )
    assert missing.returncode == 2
    assert "pip install 'intent-classifier-helpers[distributed]'" in missing.stderr


def test_workers_and_cluster_together_are_refused(notebooks, tmp_path):
    result = batch(
        "--out",
        str(tmp_path / "x"),
        "--notebooks",
        notebooks,
        "--workers",
        "2",
        "--cluster",
        "tcp://127.0.0.1:1",
    )
    assert result.returncode == 2 and "--workers starts a local cluster" in result.stderr
    assert not (tmp_path / "x").exists()


def test_workers_check_they_share_out_and_the_notebooks(notebooks, tmp_path):
    marker = tmp_path / ".batch-token"
    marker.write_text("token")
    path = notebooks.split(",")[0]
    digest = hashlib.sha1(Path(path).read_bytes()).hexdigest()
    assert _marker_problem(str(marker), "token", {path: digest}) is None
    assert "--out must be on storage that the client and every worker share" in _marker_problem(
        str(tmp_path / "elsewhere"), "token", {path: digest}
    )
    assert "notebooks must be at the same path" in _marker_problem(
        str(marker), "token", {path: "0" * 40}
    )


@pytest.mark.slow  # a Dask cluster and notebook kernels
def test_ctrl_c_cancels_queued_points_and_keeps_finished_ones(notebooks, tmp_path):
    """--workers 2: alpha-1 finishes, alpha-2 and -3 sleep, alpha-4 waits; then Ctrl-C."""
    out = tmp_path / "ctrl-c"
    environ = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "helpers.batch",
            "--out",
            str(out),
            "--grid",
            "alpha=1,2,3,4",
            "--set",
            "beta=0.0",
            "--set",
            "nap=600",
            "--notebooks",
            notebooks,
            "--workers",
            "2",
        ],
        # files, not pipes: a process the run leaves behind cannot keep the test waiting for
        # end-of-file, and on a hang the failure shows what the run printed
        stdout=(tmp_path / "stdout.txt").open("w"),
        stderr=(tmp_path / "stderr.txt").open("w"),
        env=environ,
    )

    def printed() -> str:
        return (tmp_path / "stderr.txt").read_text()

    try:
        deadline = time.monotonic() + 300
        while not all((out / run / "count_a.txt").exists() for run in ("alpha-2", "alpha-3")):
            assert process.poll() is None and time.monotonic() < deadline, printed()
            time.sleep(0.5)
        time.sleep(3)  # both sleeping in their first notebook's last cell
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            tree = subprocess.run(
                ["ps", "-eo", "pid,ppid,etime,args"], capture_output=True, text=True
            ).stdout
            pytest.fail(f"still running 120 s after Ctrl-C\n{printed()[-3000:]}\n{tree}")
    finally:
        process.kill()
    stderr = printed()
    assert process.returncode == 130, stderr
    assert "cancelled" in stderr
    summary = pd.read_csv(out / "summary.csv").set_index("run")
    assert list(summary["status"]) == ["ok", "cancelled", "cancelled", "cancelled"]
    assert summary.loc["alpha-1", "accuracy"] == pytest.approx(0.1)
    assert json.loads((out / "alpha-1" / "status.json").read_text())["status"] == "ok"
    assert not (out / "alpha-4").exists()  # queued, never started
    assert not (out / "alpha-2" / "status.json").exists()  # a rerun will run it


def test_the_encoder_trainer_uses_the_points_thread_share(monkeypatch):
    from helpers.factory.trainers import device

    monkeypatch.setenv("INTENT_TORCH_THREADS", "3")
    assert device.num_threads() == 3
    monkeypatch.delenv("INTENT_TORCH_THREADS")
    assert device.num_threads() == len(os.sched_getaffinity(0))  # the machine's, not capped
