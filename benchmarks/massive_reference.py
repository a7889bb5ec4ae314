"""Run the lessons, unchanged, on the real MASSIVE data and keep what each one records.

Writes ``helpers/reference_results/massive_en.json``: each lesson's recorded results (its last
cell, ``record``) from a run with its default parameters except ``data_source``, plus where
and how it ran. The lessons read it with ``helpers.reference.beside`` to show their headline
numbers next to MASSIVE's, so a Colab user, who trains on MASSIVE from the hub, knows what to
expect. Lesson 6 is left out: it needs French MASSIVE.

    .venv/bin/python benchmarks/massive_reference.py --data-source ../shared/data/massive_en

The tiny case (``--data-source sample --lessons 01 02 --out /tmp/x.json``) checks the script.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ["01", "02", "03", "04", "05", "07", "08", "09"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-source",
        default=str(ROOT.parent / "shared" / "data" / "massive_en"),
        help="the lessons' data_source: a folder in the mteb schema (default: ../shared's "
        "MASSIVE English), or 'sample' for the tiny case",
    )
    parser.add_argument(
        "--lessons", nargs="+", default=LESSONS, help="lesson numbers, run in this order"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "helpers" / "reference_results" / "massive_en.json"
    )
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    parser.add_argument(
        "--update",
        action="store_true",
        help="replace only these lessons' entries in an existing --out file (each keeps the "
        "commit and date of the run that wrote it, under 'updated')",
    )
    args = parser.parse_args(argv)
    if args.update and not args.out.is_file():
        parser.error(f"--update: no file {args.out} to update")
    unknown = sorted(set(args.lessons) - set(LESSONS))
    if unknown:
        parser.error(f"--lessons: {unknown} not among {LESSONS}")
    if args.data_source != "sample" and not Path(args.data_source).is_dir():
        parser.error(f"--data-source: no such folder {args.data_source}")

    import papermill

    from helpers.factory import start_local_factory
    from helpers.notebook import read_results

    sys.path.insert(0, str(ROOT / "tools"))
    from execute_notebooks import machine

    data_source = args.data_source
    if data_source != "sample":
        data_source = str(Path(data_source).resolve())
    notebooks = {p.name[:2]: p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))}
    lessons, seconds = {}, {}
    with tempfile.TemporaryDirectory(prefix="massive-reference-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        copies = Path(tmp) / "notebooks"
        shutil.copytree(ROOT / "notebooks", copies)  # a snapshot: later edits do not leak in
        if set(args.lessons) - {"01", "02"}:  # lessons 3-9 use the Classifier Factory
            start_local_factory(work / "factory", exit_with=os.getpid())
        for number in args.lessons:
            name, stem = notebooks[number].name, notebooks[number].stem
            started = time.perf_counter()
            executed = papermill.execute_notebook(
                str(copies / name),
                str(Path(tmp) / f"executed-{name}"),
                parameters={"data_source": data_source, "work_dir": str(work)},
                cwd=str(copies),
                progress_bar=False,
                execution_timeout=args.timeout,
            )
            seconds[stem] = round(time.perf_counter() - started, 1)
            lessons[stem] = read_results(executed)
            print(f"{name}: {seconds[stem]:.0f} s", flush=True)
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty", "--exclude", "*"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    data = (
        "MASSIVE English (mteb/amazon_massive_intent), its train split subset as the cookbook does"
        if data_source != "sample"
        else "the bundled sample (the script's tiny case, not a reference)"
    )
    out = {
        "data": data,
        "data_source": Path(data_source).name if data_source != "sample" else "sample",
        "written_by": "benchmarks/massive_reference.py",
        "commit": commit or "unknown",
        "date": dt.date.today().isoformat(),
        "machine": machine(),
        "lesson_seconds": seconds,
        "lessons": lessons,
    }
    if args.update:  # the other lessons' entries stay as their run wrote them
        earlier = json.loads(args.out.read_text(encoding="utf-8"))
        if earlier.get("data_source") != out["data_source"]:
            parser.error(f"--update: {args.out} holds runs on {earlier.get('data_source')}")
        updated = earlier.get("updated", {})
        for stem in lessons:
            updated[stem] = {"commit": out["commit"], "date": out["date"]}
        out = {
            **earlier,
            "lesson_seconds": {**earlier["lesson_seconds"], **seconds},
            "lessons": {**earlier["lessons"], **lessons},
            "updated": updated,
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
