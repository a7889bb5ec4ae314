"""Execute a notebook with papermill and record how long each cell went without output.

A learner who sees nothing move for half a minute thinks the cell has hung and interrupts it.
This runs the notebook as ``papermill INPUT OUTPUT`` does and times every output message as it
arrives (text, progress bars, tables, plots); a cell's **silent gap** is the longest stretch
between its start, its outputs and its end. The report (``--report``, JSON) lists each code
cell's index and id in the executed notebook, its time and longest gap, and the notebook's
longest gap and total time.

    python tools/silent_gaps.py notebooks/03_train_classifier.ipynb /tmp/out.ipynb \\
        --cwd notebooks -y '{"training_steps": 10}' --report /tmp/gaps.json --max-gap 20

Exit status: 0, 1 when the notebook failed (papermill's message on stderr), 3 when
``--max-gap`` is given and a cell stayed silent longer than that.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from pathlib import Path

import yaml

CELL_START = re.compile(r"^Executing Cell (\d+)-*$")
CELL_END = re.compile(r"^Ending Cell (\d+)-*$")


class _Clock(logging.Handler):
    """Keeps (monotonic time, message) for every record papermill logs while it executes."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.events: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append((time.monotonic(), record.getMessage()))


def gaps(events: list[tuple[float, str]], finished: float) -> list[dict]:
    """One row per executed cell: its index in the notebook, seconds, longest silent gap and
    where that gap ended (after how many seconds of the cell)."""
    cells: list[dict] = []
    current: dict | None = None
    for when, message in [*events, (finished, "Ending Cell 0")]:
        start, end = CELL_START.match(message.strip()), CELL_END.match(message.strip())
        if start or end:
            if current is not None:  # close the open cell at its end (or the next start)
                stamps = [current["start"], *current["outputs"], when]
                widths = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
                longest = max(range(len(widths)), key=widths.__getitem__)
                cells.append(
                    {
                        "cell": current["cell"],
                        "seconds": round(when - current["start"], 2),
                        "longest_gap": round(widths[longest], 2),
                        "gap_ends_at": round(stamps[longest + 1] - current["start"], 2),
                        "outputs": len(current["outputs"]),
                    }
                )
                current = None
            if start:
                current = {"cell": int(start.group(1)) - 1, "start": when, "outputs": []}
        elif current is not None:
            current["outputs"].append(when)
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", type=Path, help="the notebook to execute")
    parser.add_argument("output", type=Path, help="where papermill writes the executed notebook")
    parser.add_argument("--cwd", type=Path, help="working folder of the kernel")
    parser.add_argument("-k", "--kernel", help="kernel name (default: the notebook's)")
    parser.add_argument("-y", "--parameters-yaml", default="{}", help="parameters, as YAML")
    parser.add_argument("--report", type=Path, help="write the JSON report here")
    parser.add_argument(
        "--max-gap", type=float, help="exit 3 when a cell stays silent longer (seconds)"
    )
    parser.add_argument("--timeout", type=int, help="seconds allowed per cell (default: none)")
    args = parser.parse_args(argv)
    parameters = yaml.safe_load(args.parameters_yaml) or {}
    if not isinstance(parameters, dict):
        parser.error(f"--parameters-yaml must be a mapping, not {parameters!r}")
    if not args.input.is_file():
        parser.error(f"{args.input}: no such notebook")

    import papermill

    clock = _Clock()
    log = logging.getLogger("papermill")
    log.addHandler(clock)
    log.setLevel(logging.INFO)
    log.propagate = False  # the outputs go to the report, not to this terminal
    started = time.monotonic()
    failure = None
    try:
        papermill.execute_notebook(
            str(args.input),
            str(args.output),
            parameters=parameters,
            kernel_name=args.kernel,
            cwd=str(args.cwd) if args.cwd else None,
            log_output=True,
            progress_bar=False,
            execution_timeout=args.timeout,
        )
    except Exception as exc:  # papermill's execution error names the failing cell
        failure = exc
    finished = time.monotonic()
    cells = gaps(clock.events, finished)
    if args.output.is_file():  # each row gets its cell's id, which stays put when cells move
        import nbformat

        ids = [c.get("id") for c in nbformat.read(args.output, as_version=4).cells]
        for row in cells:
            row["id"] = ids[row["cell"]] if row["cell"] < len(ids) else None
    worst = max(cells, key=lambda c: c["longest_gap"], default=None)
    report = {
        "notebook": args.input.name,
        "seconds": round(finished - started, 1),
        "longest_gap": worst["longest_gap"] if worst else 0.0,
        "longest_gap_cell": worst["cell"] if worst else None,
        "failed": failure is not None,
        "cells": cells,
    }
    if args.report:
        args.report.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    where = f" (cell {report['longest_gap_cell']})" if worst else ""
    print(
        f"{args.input.name}: {report['seconds']:.0f} s; longest silent gap "
        f"{report['longest_gap']:.1f} s{where}"
    )
    if failure is not None:
        print(f"{args.input.name} failed: {failure}", file=sys.stderr)
        return 1
    if args.max_gap is not None and report["longest_gap"] > args.max_gap:
        print(
            f"{args.input.name}: cell {report['longest_gap_cell']} printed nothing for "
            f"{report['longest_gap']:.1f} s (limit {args.max_gap:g} s)",
            file=sys.stderr,
        )
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
