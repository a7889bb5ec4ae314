"""Run the notebooks for every point of a parameter grid, then summarise the results.

    python -m helpers.batch --out DIR [--grid NAME=V1,V2,...]... [--set NAME=VALUE]...
                            [--notebooks 01,03 | --notebooks 'notebooks/0[34]_*.ipynb']
                            [--workers N | --cluster ADDRESS]

    python -m helpers.batch --out artifacts/sweep --set data_source=sample \\
        --grid learning_rate=1e-4,2e-4 --grid training_steps=20,50

Each point of the cartesian product of the ``--grid`` lists (``--set`` values go to every
point) runs the notebooks in order in ``DIR/<run-name>/`` (``learning_rate-0.0001__...``,
``default`` without a grid), their absolute ``work_dir``, which keeps them executed as the
log. Values are Python literals when they parse (``1e-4``, ``False``, ``[1,2]``), else
strings (``local``); a ``--grid`` list of literals splits only at the commas outside
brackets and quotes (``'x=[1,2],[3]'``, ``"s='a,b','c'"``), any other at every comma.
A name goes only to the notebooks whose ``parameters`` cell declares it; unknown names and
``work_dir`` are refused before anything runs (exit 2). A failing point is recorded and the
others go on (exit 1). Rerunning skips the points whose ``status.json`` records a success
with the same parameters and notebooks. ``DIR/summary.csv``, ``summary.md`` and
``summary.png`` cover every point; their ``accuracy``, ``macro_f1`` and ``train_seconds``
come from the results the notebooks show with :func:`helpers.notebook.record`. Notebooks
run in their folder (``notebooks/``, as in ``make run``), where relative paths in values
start. From Python, ``run_batch(out_dir, grid={"learning_rate": [1e-4, 2e-4]},
fixed={"training_steps": 20})`` returns the summary.

``--workers N`` runs up to N points at once on a local Dask cluster (N processes, 1 thread
each); ``--cluster ADDRESS`` (default: env ``DASK_SCHEDULER_ADDRESS`` unless ``--workers`` is
given) sends them to a running Dask scheduler, whose workers must see DIR and the notebooks
at the same paths (checked first). Both need the ``[distributed]`` extra; the default
(``--workers 1``, no address) runs in this process and never imports Dask. Each point's
kernels use private IPC sockets (no port races) and get ``INTENT_TORCH_THREADS`` (read by the
encoder trainer) and ``OMP_NUM_THREADS`` etc. = the worker's share of its host's cores. The
summary's ``worker`` column says where each point ran; a point whose worker died is recorded
as failed; Ctrl-C or SIGTERM cancels the queued points and keeps the finished ones (exit
130), removing the point's kernel socket folder (``batch-kernel-pid<PID>-*`` in the temp dir)
and, with a local cluster, its ``running.json``; a later run removes those a killed run left
(their process is gone), and says so.

The same with the papermill CLI: a folder per point, and each ``-p`` only to the notebooks
that declare it (``papermill --help-notebook NOTEBOOK`` lists them)::

    for lr in 0.0001 0.0002; do
        out="$PWD/artifacts/sweep/learning_rate-$lr"; mkdir -p "$out"
        papermill --cwd notebooks notebooks/01_explore_data.ipynb "$out/01.ipynb" \\
            -p work_dir "$out" -p data_source sample
        papermill --cwd notebooks notebooks/02_format_data.ipynb "$out/02.ipynb" -p work_dir "$out"
        papermill --cwd notebooks notebooks/03_train_classifier.ipynb "$out/03.ipynb" \\
            -p work_dir "$out" -p learning_rate "$lr"
        papermill --cwd notebooks notebooks/04_inference_evaluation.ipynb "$out/04.ipynb" \\
            -p work_dir "$out"
    done
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import difflib
import glob
import hashlib
import itertools
import json
import logging
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pandas as pd
import papermill as pm
from tqdm import tqdm

from helpers.fileio import atomic_write, write_json
from helpers.notebook import notebook_parameters, project_root, read_results

RESULTS = [
    "status",
    "accuracy",
    "macro_f1",
    "train_seconds",
    "wall_seconds",
    "failed_notebook",
    "error",
    "worker",
]
# Torch/BLAS threads of a point's kernel and Classifier Factory; the encoder trainer honours
# INTENT_TORCH_THREADS (documented in helpers/batch.py and docs/batch-runs.md).
THREAD_VARIABLES = (
    "INTENT_TORCH_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
)


KERNEL_DIR_PREFIX = "batch-kernel-pid"


class BatchError(ValueError):
    """The batch is misconfigured (unknown parameter, no notebook, ...); nothing was run."""


def parse_value(text: str):
    """A Python literal when ``text`` is one, else the string itself."""
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text.strip()


def split_values(text: str) -> list:
    """``"1e-4,2e-4"`` -> ``[0.0001, 0.0002]``, ``"[1,2],[3]"`` -> ``[[1, 2], [3]]``; when
    some value is not a literal (``"local,mistral"``), every comma splits."""
    try:
        return list(ast.literal_eval(f"[{text}]"))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        values = [parse_value(item) for item in text.split(",")]
    broken = [v for v in values if isinstance(v, str) and v[:1] in "[({'\""]
    if broken:
        raise BatchError(
            f"{text!r}: {broken[0]!r} opens a list, tuple, dict or string that does not close "
            "(write e.g. curve_sizes=[8,16],[32])"
        )
    return values


def _assignments(texts: list[str], parse) -> dict:
    """``["a=1", "b=x"]`` -> ``{"a": parse("1"), "b": parse("x")}``; names must be unique."""
    result = {}
    for text in texts:
        name, sep, value = (part.strip() for part in text.partition("="))
        if not sep or not name.isidentifier() or name in result:
            raise BatchError(f"expected NAME=VALUE with a new NAME, got {text!r}")
        result[name] = parse(value)
    return result


def run_name(point: dict) -> str:
    """A readable, stable folder name for a grid point, e.g. ``lr-0.0001__steps-20``."""
    raw = "__".join(f"{name}-{value}" for name, value in point.items()) or "default"
    name = re.sub(r"[^\w.+-]", "_", raw, flags=re.ASCII)
    if name != raw or len(name) > 120:  # keep names unique once characters were replaced
        name = f"{name[:100]}_{hashlib.sha1(raw.encode()).hexdigest()[:8]}"
    return name


def select_notebooks(selection=None) -> list[Path]:
    """All ``notebooks/[0-9][0-9]_*.ipynb`` of the project, or the given globs, paths and name
    prefixes (a list, or comma-separated: ``"01,03"``), in the given order."""
    root = project_root()
    project = sorted(root.glob("notebooks/[0-9][0-9]_*.ipynb")) if root else []
    items = (
        project
        if selection is None
        else (selection.split(",") if isinstance(selection, str) else selection)
    )
    paths: list[Path] = []
    for item in (str(i).strip() for i in items):
        found = sorted(glob.glob(item)) or [p for p in project if p.name.startswith(item)]
        if not found:
            raise BatchError(f"no notebook matches {item!r}")
        paths += [p for p in (Path(f).resolve() for f in found) if p not in paths]
    if not paths:
        raise BatchError("no notebooks to run")
    return paths


def declared_parameters(path: Path) -> list[str]:
    """Names assigned in the notebook's ``parameters`` cell (see
    :func:`helpers.notebook.notebook_parameters`)."""
    return notebook_parameters(path)


def check_names(names, declared: dict[Path, list[str]]) -> None:
    """Refuse ``work_dir`` and names that no notebook declares, listing the parameters."""
    known = sorted({n for names_ in declared.values() for n in names_} - {"work_dir"})
    problems = []
    for name in names:
        close = difflib.get_close_matches(name, known, n=1)
        if name == "work_dir":
            problems.append("'work_dir' is set by the runner (DIR/<run-name>/)")
        elif name not in known:
            problems.append(
                f"unknown parameter {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
            )
    if problems:
        listing = "".join(f"\n  {p.name}: {', '.join(n) or '-'}" for p, n in declared.items())
        raise BatchError("; ".join(problems) + ". Parameters per notebook:" + listing)


def check_values(values: dict[str, list]) -> None:
    """Refuse out-of-range values of shared parameters before anything runs."""
    from helpers.data import check_examples_per_intent

    for value in values.get("examples_per_intent", []):
        try:
            check_examples_per_intent(value)
        except ValueError as exc:
            raise BatchError(str(exc)) from None


def _quiet_papermill(record: logging.LogRecord) -> bool:
    """Drop papermill's warnings about names its parser misses; we check names ourselves."""
    return not record.getMessage().startswith(("Passed unknown param", "Unable to parse line"))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid > 0
    return True


def remove_stale_kernel_dirs() -> int:
    """Remove the kernel socket folders (``batch-kernel-pid<PID>-*``, ours) of processes that
    are gone, e.g. killed during a point; return how many."""
    if os.name == "nt":
        return 0
    removed = 0
    for path in Path(tempfile.gettempdir()).glob(f"{KERNEL_DIR_PREFIX}*-*"):
        pid = path.name[len(KERNEL_DIR_PREFIX) :].split("-", 1)[0]
        try:
            mine = not path.is_symlink() and path.is_dir() and path.stat().st_uid == os.getuid()
        except OSError:
            continue
        if mine and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed += not path.exists()
    return removed


def _clear_stale_running(out: Path, names) -> None:
    """Remove, and name, the ``running.json`` files that a killed run left behind: their
    worker process on this host is gone. Others may belong to a run still going elsewhere."""
    for name in names:
        running = out / name / "running.json"
        if not running.exists():
            continue
        record = _read_json(running)
        pid, worker = record.get("pid"), str(record.get("worker"))
        # files of older runs name no host: a loopback worker address was this host
        here = record.get("host", socket.gethostname() if "127.0.0.1" in worker else None)
        if here == socket.gethostname() and isinstance(pid, int) and not _pid_alive(pid):
            running.unlink(missing_ok=True)
            print(
                f"{name}: removed a stale running.json from an interrupted earlier run "
                f"(worker {record.get('worker')}, pid {pid}, is gone)",
                file=sys.stderr,
            )
        else:
            print(
                f"{name}: running.json of another run (worker {record.get('worker')}, pid "
                f"{pid}) is kept: that run may still be going",
                file=sys.stderr,
            )


DASK_MALLOC_TRIM = "MALLOC_TRIM_THRESHOLD_"
"""Dask's nanny sets it (to 65536) in its workers' environment; a kernel that inherits it
trains the encoder ~1.5x slower (glibc hands every large temporary back to the system)."""


def kernel_environment(base: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    """A point's kernel environment: ``base`` without Dask's malloc setting, plus ``env``."""
    return {**{k: v for k, v in base.items() if k != DASK_MALLOC_TRIM}, **env}


def kernel_manager_class(env: dict, socket_dir: str | None):
    """A kernel manager for one point: its kernel gets ``env`` on top of ours and, when
    ``socket_dir`` is given, talks over private IPC sockets there instead of TCP ports, so
    concurrent points never race for a port (papermill#511, nbconvert#1066)."""
    from jupyter_client import AsyncKernelManager

    class PointKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            if socket_dir:
                kwargs.update(
                    transport="ipc", ip=os.path.join(socket_dir, "kernel"), cache_ports=False
                )
            super().__init__(**kwargs)

        async def _async_pre_start_kernel(self, **kw):
            kw["env"] = kernel_environment(kw.get("env", os.environ), env)
            return await super()._async_pre_start_kernel(**kw)

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            await super()._async_launch_kernel(kernel_cmd, **kw)
            process = getattr(self.provisioner, "process", None)
            if process is not None:
                _KERNEL_PROCESSES.add(process)

    return PointKernelManager


_KERNEL_PROCESSES: set = set()
"""The kernel processes this process started (``Popen``), so an interrupted serial run can
end the one still running."""


def _kill_kernels() -> None:
    """Kill every kernel this process started that is still running."""
    for process in list(_KERNEL_PROCESSES):
        if process.poll() is None:
            process.kill()
        _KERNEL_PROCESSES.discard(process)


def _run_point(
    folder: Path,
    params: dict,
    notebooks,
    declared,
    bar=None,
    *,
    worker="local",
    env=None,
    on_notebook=None,
) -> dict:
    """Execute the notebooks for one point; write ``status.json`` and return its content.
    ``env`` goes to the kernels (and the services they start); ``on_notebook(path)`` is called
    before each notebook."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ["status.json", *(p.name for p in notebooks)]:
        (folder / stale).unlink(missing_ok=True)
    status = {
        "status": "ok",
        "parameters": params,
        "notebooks": [p.name for p in notebooks],
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "worker": worker,
        **({"threads": env["INTENT_TORCH_THREADS"]} if env else {}),
    }
    start = time.perf_counter()
    # IPC sockets need a short path (108 bytes), so not under a deep --out; the pid in the
    # name lets a later run remove the folder of a killed process
    socket_dir = (
        None if os.name == "nt" else tempfile.mkdtemp(prefix=f"{KERNEL_DIR_PREFIX}{os.getpid()}-")
    )
    try:
        results = _run_notebooks(
            folder, params, notebooks, declared, bar, status, env, socket_dir, on_notebook
        )
    finally:  # also on Ctrl-C / SIGTERM
        if socket_dir:
            shutil.rmtree(socket_dir, ignore_errors=True)
    status["results"] = {k: results.get(k) for k in ("accuracy", "macro_f1", "train_seconds")}
    status["wall_seconds"] = round(time.perf_counter() - start, 1)
    status["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    _write_status(folder, status)
    return status


def _run_notebooks(
    folder: Path, params, notebooks, declared, bar, status: dict, env, socket_dir, on_notebook
) -> dict:
    """Execute the point's notebooks in order (``status`` records a failure); return the
    results they showed with helpers.notebook.record, merged."""
    engine = {"kernel_manager_class": kernel_manager_class(env or {}, socket_dir)}
    results: dict = {}
    for i, path in enumerate(notebooks):
        nb_params = {k: v for k, v in params.items() if k in declared[path]}
        if "work_dir" in declared[path]:
            nb_params["work_dir"] = str(folder)
        if on_notebook:
            on_notebook(path)
        try:
            pm.execute_notebook(
                str(path),
                str(folder / path.name),
                parameters=nb_params,
                cwd=str(path.parent),
                kernel_name="python3",
                progress_bar=False,
                **engine,
            )
        except Exception as exc:  # record it, go on with the next point
            text = (
                f"{exc.ename}: {exc.evalue}"
                if isinstance(exc, pm.PapermillExecutionError)
                else f"{type(exc).__name__}: {exc}"
            )
            error = [line for line in text.splitlines() if line.strip()][-1]
            status.update(status="failed", failed_notebook=path.name, error=error)
            if bar is not None:
                bar.update(len(notebooks) - i)
            break
        results.update(read_results(folder / path.name) or {})
        if bar is not None:
            bar.update(1)
    return results


def _write_status(folder: Path, status: dict) -> None:
    write_json(folder / "status.json", status)  # atomic: a status.json is always complete


def run_batch(
    out_dir,
    grid: dict | None = None,
    fixed: dict | None = None,
    notebooks=None,
    progress: bool = True,
    workers: int = 1,
    cluster: str | None = None,
) -> pd.DataFrame:
    """Run ``notebooks`` for every point of ``grid`` (name -> list of values) with the
    ``fixed`` values; write the summary files into ``out_dir`` and return the summary table.
    ``workers`` > 1 runs that many points at once on a local Dask cluster; ``cluster`` (a
    scheduler address) sends the points to an existing one. Raises :class:`BatchError`
    before running anything when the batch is misconfigured."""
    grid, fixed = dict(grid or {}), dict(fixed or {})
    if workers < 1:
        raise BatchError(f"--workers must be at least 1, got {workers}")
    paths = select_notebooks(notebooks)
    declared = {p: declared_parameters(p) for p in paths}
    check_names([*grid, *fixed], declared)
    check_values({**{k: list(v) for k, v in grid.items()}, **{k: [v] for k, v in fixed.items()}})
    if both := sorted(set(grid) & set(fixed)):
        raise BatchError(f"parameter(s) both swept and fixed: {', '.join(both)}")
    points = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    names = [run_name(point) for point in points]
    if not points or len(set(names)) < len(names):
        raise BatchError("a --grid list is empty or gives the same run name twice")

    out = Path(out_dir).resolve()
    jobs = {name: {**point, **fixed} for point, name in zip(points, names, strict=True)}
    rows: dict[str, dict] = {}
    loggers = [logging.getLogger(n) for n in ("papermill", "papermill.translators")]
    for logger in loggers:
        logger.addFilter(_quiet_papermill)
    remove_stale_kernel_dirs()
    _clear_stale_running(out, jobs)
    try:
        if workers == 1 and not cluster:  # in-process, no Dask import
            _run_serial(out, jobs, paths, declared, rows, progress)
        else:
            _run_distributed(out, jobs, paths, declared, rows, progress, workers, cluster)
    finally:
        for logger in loggers:
            logger.removeFilter(_quiet_papermill)
        # also after Ctrl-C: finished points as recorded, the others "cancelled"
        cancelled = {"status": "cancelled"}
        df = pd.DataFrame(
            [rows.get(name) or _row(name, jobs[name], cancelled) for name in jobs],
            columns=["run", *grid, *fixed, *RESULTS],
        )
        write_summary(df, out, list(grid))
    return df


def _finished(folder: Path, params: dict, notebooks) -> dict | None:
    """The point's ``status.json`` if it records a success with these parameters and notebooks."""
    status = _read_json(folder / "status.json")
    wanted = {
        "status": "ok",
        "notebooks": [p.name for p in notebooks],
        "parameters": json.loads(json.dumps(params, default=str)),
    }
    return status if all(status.get(k) == v for k, v in wanted.items()) else None


def _row(name: str, params: dict, status: dict) -> dict:
    return {
        "run": name,
        **params,
        **{k: status.get(k) for k in RESULTS},
        **status.get("results", {}),
    }


def _describe(row: dict, done_earlier: bool) -> str:
    return (
        f"{row['run']}: {row['status']}"
        + (
            " (done earlier)"
            if done_earlier
            else ""
            if row["wall_seconds"] is None
            else f" in {row['wall_seconds']:.0f} s"
        )
        + ("" if done_earlier or row["worker"] in (None, "local") else f" on {row['worker']}")
        + ("" if row["accuracy"] is None else f", accuracy {row['accuracy']:.3f}")
        + (f", {row['failed_notebook'] or 'error'}: {row['error']}" if row["error"] else "")
    )


def _run_serial(out: Path, jobs: dict, paths, declared, rows: dict, progress: bool) -> None:
    bar = tqdm(total=len(jobs) * len(paths), unit="notebook", disable=not progress)
    try:
        for n, (name, params) in enumerate(jobs.items(), 1):
            status = _finished(out / name, params, paths)
            done = status is not None
            if done:
                bar.update(len(paths))
            else:
                try:
                    status = _interruptible(_run_point, out / name, params, paths, declared, bar)
                except KeyboardInterrupt:
                    # the point's status.json would blame the killed kernel: none, as for any
                    # unfinished point ("cancelled" in the summary)
                    (out / name / "status.json").unlink(missing_ok=True)
                    raise
            rows[name] = _row(name, params, status)
            if progress:
                bar.write(f"[{n}/{len(jobs)}] " + _describe(rows[name], done))
    finally:
        bar.close()


# --- Dask: --workers N (a local cluster) or --cluster ADDRESS --------------------------------

DISTRIBUTED_EXTRA = (
    "--workers N (N > 1) and --cluster need Dask's distributed scheduler, an "
    "optional extra: pip install 'intent-classifier-helpers[distributed]' "
    "(or `make install` in the checkout)"
)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def thread_env(slots: int) -> dict:
    """Environment for a point that shares this machine with ``slots - 1`` others: torch and
    BLAS threads = its share of the cores, unless ``INTENT_TORCH_THREADS`` is set already."""
    threads = os.environ.get("INTENT_TORCH_THREADS") or str(max(1, _cores() // max(1, slots)))
    return dict.fromkeys(THREAD_VARIABLES, threads)


def _marker_problem(marker: str, token: str, notebooks: dict[str, str]) -> str | None:
    """Runs on a worker: why it cannot run points of this batch, or None. It must see the
    marker the client wrote in --out, and the same notebooks at the same paths."""
    try:
        seen = Path(marker).read_text(encoding="utf-8")
    except OSError:
        seen = None
    if seen != token:
        return (
            f"cannot see {marker} that the client wrote in --out: --out must be on storage "
            "that the client and every worker share (same path)"
        )
    for path, digest in notebooks.items():
        try:
            same = hashlib.sha1(Path(path).read_bytes()).hexdigest() == digest
        except OSError:
            same = False
        if not same:
            return (
                f"does not see the client's {path}: the notebooks must be at the same path "
                "on every worker (e.g. the checkout on the shared storage)"
            )
    return None


def _point_task(
    folder: str,
    params: dict,
    notebooks: list,
    declared: dict,
    run_id: str,
    marker: tuple,
    host_slots: dict,
) -> dict:
    """Runs on a Dask worker: one point, in its own folder, kernels and Classifier Factory."""
    from distributed import get_worker
    from distributed.comm import get_address_host

    worker = get_worker()
    folder = Path(folder)
    if problem := _marker_problem(*marker):
        return {
            "status": "failed",
            "error": f"worker {worker.address} {problem}",
            "worker": worker.address,
        }
    status = _read_json(folder / "status.json")
    if status.get("run_id") == run_id:  # recomputed after its result was lost with a worker
        return status
    running = folder / "running.json"
    earlier = _read_json(running)
    if earlier.get("run_id") == run_id:
        # the scheduler retries a task whose worker died; record the death instead
        status = {
            "status": "failed",
            "parameters": params,
            "run_id": run_id,
            "notebooks": [p.name for p in notebooks],
            "worker": earlier.get("worker"),
            "failed_notebook": earlier.get("notebook"),
            "results": {},
            "error": f"worker {earlier.get('worker')} died while running this point "
            f"(pid {earlier.get('pid')}); rerun the command to finish it",
        }
        _write_status(folder, status)
        running.unlink(missing_ok=True)
        return status
    folder.mkdir(parents=True, exist_ok=True)

    def on_notebook(path: Path) -> None:
        record = {
            "run_id": run_id,
            "worker": worker.address,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "notebook": path.name,
        }
        atomic_write(running, json.dumps(record))

    slots = host_slots.get(get_address_host(worker.address)) or worker.state.nthreads
    status = _run_point(
        folder,
        params,
        notebooks,
        declared,
        worker=worker.address,
        env=thread_env(slots),
        on_notebook=on_notebook,
    )
    status["run_id"] = run_id
    _write_status(folder, status)
    running.unlink(missing_ok=True)
    return status


def _dask_client(workers: int, cluster: str | None):
    """A ``distributed.Client`` for the scheduler at ``cluster``, or for a new local cluster of
    ``workers`` processes with one thread each (closed with the client)."""
    try:
        import dask
        import distributed
    except ImportError as exc:
        raise BatchError(DISTRIBUTED_EXTRA) from exc
    if cluster:
        try:
            return distributed.Client(cluster, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise BatchError(f"cannot reach the Dask scheduler at {cluster!r}: {exc}") from exc
    # one point per worker at a time (no second point waiting inside a busy worker)
    with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
        local = distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",  # scheduler, workers and dashboard on this machine only
            dashboard_address="127.0.0.1:0",
        )
    client = distributed.Client(local)
    client._batch_cluster = local  # closed with the client below
    return client


def _run_distributed(
    out: Path,
    jobs: dict,
    paths,
    declared,
    rows: dict,
    progress: bool,
    workers: int,
    cluster: str | None,
) -> None:
    import uuid

    client = _dask_client(workers, cluster)
    from distributed import wait

    run_id = uuid.uuid4().hex
    out.mkdir(parents=True, exist_ok=True)
    marker = out / f".batch-{run_id}"
    marker.write_text(run_id, encoding="utf-8")
    notebooks = {str(p): hashlib.sha1(p.read_bytes()).hexdigest() for p in paths}
    bar, pending = None, {}
    try:
        problems = {
            w: p
            for w, p in client.run(_marker_problem, str(marker), run_id, notebooks).items()
            if p
        }
        if problems:
            raise BatchError("; ".join(f"worker {w} {p}" for w, p in problems.items()))
        info = client.scheduler_info(n_workers=-1)["workers"]
        host_slots: dict[str, int] = {}
        for worker in info.values():
            host_slots[worker["host"]] = host_slots.get(worker["host"], 0) + worker["nthreads"]
        where = cluster or f"a local cluster of {workers} worker processes"
        print(f"{len(jobs)} points on {where} ({len(info)} workers now)", file=sys.stderr)

        bar = tqdm(total=len(jobs), unit="point", disable=not progress)
        failed = 0
        for name, params in jobs.items():
            if status := _finished(out / name, params, paths):
                rows[name] = _row(name, params, status)
                bar.update(1)
                if progress:
                    bar.write(f"[{bar.n}/{len(jobs)}] " + _describe(rows[name], True))
                continue
            future = client.submit(
                _point_task,
                str(out / name),
                params,
                paths,
                declared,
                run_id,
                (str(marker), run_id, notebooks),
                host_slots,
                key=f"batch-{run_id[:8]}-{name}",
                pure=False,
            )
            pending[future] = name
        with _ctrl_c_flag() as interrupted:
            while pending:
                if interrupted.is_set():
                    raise KeyboardInterrupt
                try:
                    wait(list(pending), timeout=2, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    pass
                for future in [f for f in pending if f.done()]:
                    name = pending.pop(future)
                    status = _collect(future, out / name, jobs[name], paths, run_id)
                    rows[name] = _row(name, jobs[name], status)
                    failed += status.get("status") != "ok"
                    bar.update(1)
                    if progress:
                        bar.write(f"[{bar.n}/{len(jobs)}] " + _describe(rows[name], False))
                running = sum(
                    _read_json(out / n / "running.json").get("run_id") == run_id
                    for n in pending.values()
                )
                queued = len(pending) - running
                bar.set_postfix_str(
                    f"running {running}, queued {queued}, failed {failed}", refresh=True
                )
    except KeyboardInterrupt:
        # cancel what is queued; finished points keep their status.json
        left = [f for f in pending if not f.done()]
        client.cancel(left)
        print(
            f"\ncancelled {len(left)} unfinished points; finished points are kept in {out}",
            file=sys.stderr,
        )
        raise
    finally:
        if bar is not None:
            bar.close()
        marker.unlink(missing_ok=True)
        local = getattr(client, "_batch_cluster", None)
        client.close()
        if local is not None:
            local.close()  # its workers are gone: what they were running is stale
            for name in pending.values():
                running = out / name / "running.json"
                if _read_json(running).get("run_id") == run_id:
                    running.unlink(missing_ok=True)
            remove_stale_kernel_dirs()


@contextlib.contextmanager
def _ctrl_c_flag() -> Iterator[threading.Event]:
    """An event set by Ctrl-C (SIGINT) while the block runs, for a loop to check every few
    seconds; the previous handler comes back afterwards.

    SIGTERM does the same. The default handler raises KeyboardInterrupt wherever the main
    thread happens to be, and
    inside Dask's waiting code that exception was sometimes lost: the run went on as if nothing
    had been pressed. A second Ctrl-C raises at once. Only the main thread can install a
    handler; elsewhere the event is never set.
    """
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return

    def on_sigint(signum, frame):
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()

    previous = {sig: signal.signal(sig, on_sigint) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield interrupted
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _interruptible(fn, *args):
    """``fn(*args)`` on a thread while this (main) thread waits for it, so Ctrl-C or SIGTERM
    is always seen: raised inside papermill's kernel client, the KeyboardInterrupt was
    sometimes lost, twice in a row, and the run went on. On an interrupt the running kernel is
    killed, the point's clean-up finishes, and KeyboardInterrupt is raised here."""
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = fn(*args)
        except BaseException as exc:  # handed to the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="batch-point", daemon=True)
    with _ctrl_c_flag() as interrupted:
        worker.start()
        try:
            while worker.is_alive() and not interrupted.is_set():
                worker.join(0.2)
            # also when the point ended first: a terminal's Ctrl-C reaches the kernel too, whose
            # cell then fails at once
            if interrupted.is_set():
                raise KeyboardInterrupt
        except KeyboardInterrupt:  # the flag, or a second Ctrl-C raised by its handler
            _kill_kernels()
            worker.join(60)  # papermill sees the dead kernel; the point cleans up
            raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While the block runs, SIGTERM raises KeyboardInterrupt as Ctrl-C does, so that
    ``finally`` blocks clean up (the default handler ends the process at once)."""

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _collect(future, folder: Path, params: dict, paths, run_id: str) -> dict:
    """The status a point's task returned, or a failed one naming why it did not return."""
    try:
        return future.result()
    except Exception as exc:  # KilledWorker, a lost scheduler, a cancelled task, ...
        running = _read_json(folder / "running.json")
        error = " ".join(f"{type(exc).__name__}: {exc}".split())
        status = {
            "status": "failed",
            "parameters": params,
            "run_id": run_id,
            "results": {},
            "notebooks": [p.name for p in paths],
            "error": error,
            "worker": running.get("worker"),
            "failed_notebook": running.get("notebook"),
        }
        if folder.is_dir():
            _write_status(folder, status)
            (folder / "running.json").unlink(missing_ok=True)
        return status


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if value != value else format(value, ".4g" if abs(value) < 1000 else ".0f")
    return "" if value is None else " ".join(str(value).split()).replace("|", "\\|")


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub markdown table (no ``tabulate`` needed)."""
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + " --- |" * len(df.columns)]
    lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def plot_summary(df: pd.DataFrame, swept: list[str], path: Path) -> None:
    """Accuracy against each swept parameter, one panel each (bars for non-numbers)."""
    from matplotlib.figure import Figure  # no pyplot: works headless, leaves backends alone

    swept = swept or ["run"]
    fig = Figure(figsize=(4.5 * len(swept), 3.5), layout="constrained")
    accuracy = pd.to_numeric(df["accuracy"], errors="coerce")
    for ax, name in zip(fig.subplots(1, len(swept), squeeze=False)[0], swept, strict=True):
        values = df[name]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            ax.scatter(values, accuracy, alpha=0.5)
            mean = accuracy.groupby(values).mean()
            ax.plot(mean.index, mean.to_numpy(), marker="o")
            if values.min() > 0 and values.max() >= 100 * values.min():
                ax.set_xscale("log")
        else:
            mean = accuracy.groupby(values.astype(str), sort=False).mean()
            ax.bar(mean.index, mean.fillna(0).to_numpy())
            ax.tick_params(axis="x", labelrotation=30)
        ax.set(xlabel=name, ylabel="accuracy", title=f"accuracy vs {name} (line, bars: mean)")
    fig.savefig(path, dpi=100)


def write_summary(df: pd.DataFrame, out: Path, swept: list[str]) -> None:
    """``summary.csv``, ``summary.png`` and ``summary.md`` (table + plot) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "summary.csv", index=False)
    plot_summary(df, swept, out / "summary.png")
    ok = int((df["status"] == "ok").sum())
    (out / "summary.md").write_text(
        f"# Batch summary\n\n{len(df)} points: {ok} ok, {len(df) - ok} failed.\n\n"
        f"{markdown_table(df)}\n\n![accuracy against each swept parameter](summary.png)\n",
        encoding="utf-8",
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.batch",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, help="folder for the runs and the summary")
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="NAME=V1,V2,...",
        help="values to sweep (repeat for a cartesian product)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        dest="fixed",
        help="a value for every point",
    )
    parser.add_argument(
        "--notebooks",
        metavar="GLOB|PREFIXES",
        help="globs, paths or name prefixes, comma-separated (default: all)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="run up to N points at once on this machine (default 1: one after "
        "another, in this process)",
    )
    parser.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="send the points to this Dask scheduler (default: env "
        "DASK_SCHEDULER_ADDRESS unless --workers is given); --out must be "
        "on storage that the client and the workers share",
    )
    args = parser.parse_args(argv)
    if args.cluster and args.workers is not None:
        parser.error(
            "--workers starts a local cluster; with --cluster the scheduler's "
            "workers decide how many points run at once"
        )
    cluster = args.cluster or (
        None if args.workers is not None else os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    )
    try:
        grid, fixed = _assignments(args.grid, split_values), _assignments(args.fixed, parse_value)
        with _sigterm_raises():
            df = run_batch(
                args.out,
                grid,
                fixed,
                args.notebooks,
                workers=1 if args.workers is None else args.workers,
                cluster=cluster,
            )
    except BatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted; summary so far: {Path(args.out) / 'summary.md'}", file=sys.stderr)
        return 130
    print(f"summary: {Path(args.out) / 'summary.md'}")
    return 0 if (df["status"] == "ok").all() else 1


if __name__ == "__main__":
    # through the module, so that Dask workers unpickle helpers.batch functions, not __main__'s
    from helpers.batch import main as _main

    sys.exit(_main())
