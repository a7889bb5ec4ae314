"""Benchmark ``python -m helpers.batch`` serial against parallel, and the fixed cost per point.

    python benchmarks/bench_batch.py                 # --workers 1 and --workers 2, same run
    python benchmarks/bench_batch.py --workers 1 2 4 --repeats 5
    python benchmarks/bench_batch.py --set base_model=tfidf-logreg   # training in seconds
    python benchmarks/bench_batch.py --workers 1 --notebooks 01,02 --grid max_samples=600 \
        --steps 0 --repeats 1 --out /tmp/batch.jsonl                 # a quick check

1. The same 4-point sweep (lessons 01-04, ``learning_rate`` x 4, ``training_steps=20``, the
   bundled sample) with each ``--workers`` value, each in a fresh folder, through the real CLI:
   wall time, per-point wall and training seconds, and the load average around each run.
2. The fixed cost of a point, measured alone: starting and stopping one kernel (as the runner
   does: private IPC sockets, papermill, a one-cell notebook; one point runs 4) and starting the
   Classifier Factory (``start_local_factory`` until ``/health`` answers; one point starts 1),
   and the one-off start-up of a local Dask cluster. The sweep's own notebooks give the same
   kernel cost from the inside: each notebook's wall time minus the time of its cells.

Appends one JSON line to ``benchmarks/results/batch.jsonl`` (``--out``) and prints a markdown
summary. Other processes on a shared machine change every figure: read them next to the load
average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "batch.jsonl"
GRID = "learning_rate=5e-5,1e-4,2e-4,4e-4"
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def sweep(
    workers: int, out: Path, steps: int, extra: list[str], notebooks: str = "01,02,03,04", grid=GRID
) -> dict:
    """One sweep through the CLI (``steps`` 0: ``training_steps`` is left out)."""
    import nbformat
    import pandas as pd

    cmd = [
        sys.executable,
        "-m",
        "helpers.batch",
        "--out",
        str(out),
        "--notebooks",
        notebooks,
        "--grid",
        grid,
        *(["--set", f"training_steps={steps}"] if steps else []),
        "--set",
        "data_source=sample",
        "--workers",
        str(workers),
        *(a for value in extra for a in ("--set", value)),
    ]
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"} | OFFLINE
    before = load()
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"--workers {workers} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    summary = pd.read_csv(out / "summary.csv")
    overheads = []  # per notebook: its wall time minus its cells' (kernel start-up and shut-down)
    paths = sorted(out.glob("*/[0-9][0-9]_*.ipynb"))
    for nb_path in paths:
        nb = nbformat.read(nb_path, as_version=4)
        cells = sum(c.metadata.get("papermill", {}).get("duration") or 0 for c in nb.cells)
        overheads.append(nb.metadata["papermill"]["duration"] - cells)
    return {
        "workers": workers,
        "wall_seconds": round(wall, 1),
        "load_before": before,
        "load_after": load(),
        "points": len(summary),
        "point_wall_seconds": summary["wall_seconds"].tolist(),
        "train_seconds": summary["train_seconds"].tolist(),
        "accuracy": summary["accuracy"].round(4).tolist(),
        "kernel_overhead_per_notebook_s": round(statistics.median(overheads), 2),
        "notebooks_per_point": len(paths) // len(summary),
        "kernel_overhead_per_point_s": round(
            len(paths) / len(summary) * statistics.median(overheads), 2
        ),
    }


def kernel_cost(folder: Path, repeats: int) -> list[float]:
    """Seconds to run a one-cell notebook the way the runner does (start, run, shut down)."""
    import nbformat
    import papermill as pm

    from helpers.batch import kernel_manager_class

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    path = folder / "tiny.ipynb"
    nbformat.write(nb, path)
    times = []
    for _ in range(repeats):
        sockets = tempfile.mkdtemp(prefix="batch-kernel-")
        start = time.perf_counter()
        pm.execute_notebook(
            str(path),
            str(folder / "tiny.out.ipynb"),
            kernel_name="python3",
            progress_bar=False,
            kernel_manager_class=kernel_manager_class({}, sockets),
        )
        times.append(round(time.perf_counter() - start, 2))
        shutil.rmtree(sockets, ignore_errors=True)
    return times


def service_cost(folder: Path, repeats: int) -> list[float]:
    from helpers.factory import start_local_factory, stop_local_factory

    times = []
    for i in range(repeats):
        data = folder / f"factory{i}"
        start = time.perf_counter()
        start_local_factory(data)
        times.append(round(time.perf_counter() - start, 2))
        stop_local_factory(data)
    return times


def cluster_cost(workers: int) -> float:
    from distributed import Client, LocalCluster

    start = time.perf_counter()
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(workers)
        return round(time.perf_counter() - start, 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--steps", type=int, default=20, help="training_steps of every point (0: not set)"
    )
    parser.add_argument(
        "--notebooks", default="01,02,03,04", help="the lessons each point runs (prefixes)"
    )
    parser.add_argument("--grid", default=GRID, metavar="NAME=V1,V2,...", help="the sweep")
    parser.add_argument("--repeats", type=int, default=3, help="for the fixed costs")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="more values for every point, e.g. base_model=tfidf-logreg",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="the JSON lines file")
    args = parser.parse_args()
    os.environ.update(OFFLINE)
    record: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "grid": args.grid,
        "notebooks": args.notebooks,
        "steps": args.steps,
        "set": args.set,
        "sweeps": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as name:
        tmp = Path(name)
        for workers in args.workers:
            result = sweep(
                workers, tmp / f"workers-{workers}", args.steps, args.set, args.notebooks, args.grid
            )
            record["sweeps"].append(result)
            print(json.dumps(result), flush=True)
        record["kernel_seconds"] = kernel_cost(tmp, args.repeats)
        record["service_start_seconds"] = service_cost(tmp, args.repeats)
        record["cluster_start_seconds"] = cluster_cost(max(args.workers))
        record["load_end"] = load()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")

    per_point = record["sweeps"][0]["notebooks_per_point"]  # kernels started per point
    kernel = statistics.median(record["kernel_seconds"])
    service = statistics.median(record["service_start_seconds"])
    print(
        "\n| --workers | wall (s) | points | median point wall (s) | median training (s) "
        "| load before → after |\n|---|---|---|---|---|---|"
    )
    for s in record["sweeps"]:
        print(
            f"| {s['workers']} | {s['wall_seconds']:.0f} | {s['points']} "
            f"| {statistics.median(s['point_wall_seconds']):.0f} "
            f"| {statistics.median(s['train_seconds']):.0f} "
            f"| {s['load_before'][0]} → {s['load_after'][0]} |"
        )
    print(
        f"\nfixed cost per point: {per_point} kernels × {kernel:.1f} s + service {service:.1f} s"
        f" = {per_point * kernel + service:.1f} s (target < 10 s); local cluster start "
        f"{record['cluster_start_seconds']:.1f} s once; kernel overhead seen inside the sweeps: "
        + ", ".join(
            f"{s['kernel_overhead_per_point_s']:.1f} s/point (--workers {s['workers']})"
            for s in record["sweeps"]
        )
    )


if __name__ == "__main__":
    main()
