"""How long lesson 3's part A ("What a classifier is", no service) takes on this machine.

Runs lesson 3's cells up to part B (``--until``, a cell id) in a fresh kernel on the bundled
sample, in a temporary working folder (the set-up cell redoes lessons 1-2 there, which is
not counted), and reports part A's seconds: its cells from ``--start`` on. Issue 26 asks
for under a minute on 2 CPU cores. Appends a line to ``benchmarks/results/lesson3_part_a.jsonl``.

    .venv/bin/python benchmarks/lesson3_part_a.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LESSON = ROOT / "notebooks" / "03_train_classifier.ipynb"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--start", default="nb03-t01", help="the first cell of part A (its id)")
    parser.add_argument("--until", default="nb03-b01", help="the first cell not run (its id)")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "lesson3_part_a.jsonl"
    )
    args = parser.parse_args(argv)

    import nbformat
    from nbclient import NotebookClient

    sys.path.insert(0, str(ROOT / "tools"))
    from execute_notebooks import machine

    nb = nbformat.read(LESSON, as_version=4)
    ids = [c.get("id") for c in nb.cells]
    for name, cell_id in (("--start", args.start), ("--until", args.until)):
        if cell_id not in ids:
            parser.error(f"{name}: no cell {cell_id!r} in {LESSON.name}")
    first, stop = ids.index(args.start), ids.index(args.until)
    if first >= stop:
        parser.error(f"--start {args.start} must come before --until {args.until}")
    nb.cells = nb.cells[:stop]
    with tempfile.TemporaryDirectory(prefix="lesson3-part-a-") as tmp:
        for cell in nb.cells:  # the parameters cell: the sample, in a folder of our own
            if "parameters" in cell.metadata.get("tags", []):
                cell.source += f'\ndata_source = "sample"\nwork_dir = {tmp!r}\n'
        seconds: list[float] = []
        client = NotebookClient(
            nb,
            timeout=600,
            kernel_name="python3",
            resources={"metadata": {"path": str(ROOT / "notebooks")}},
        )
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells):
                started = time.perf_counter()
                client.execute_cell(cell, index)
                seconds.append(time.perf_counter() - started)
    part_a = sum(seconds[first:])
    row = {
        "date": dt.date.today().isoformat(),
        "part_a_seconds": round(part_a, 1),
        "cells": stop - first,
        "set_up_seconds": round(sum(seconds[:first]), 1),
        "torch_threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "machine": machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    print(
        f"part A ({stop - first} cells): {part_a:.1f} s; set-up before it {row['set_up_seconds']} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
