"""Each lesson opened alone, as from its Colab badge, with its own defaults: time and silences.

Runs the Colab simulation (``tests/notebooks/test_colab_simulation.py``: Python 3.13, Colab's
packages, the wheel installed by the lesson's install cell, a fresh folder per lesson, offline on
the bundled sample) with ``COLAB_SIM_DEFAULTS=1``: every lesson with its default parameters and
no training cache, so lessons 04, 07 and 09 retrain lesson 03's model as a learner's runtime
does. For each lesson it reports the wall time (kernel start and retraining included, the
environment's set-up not) and the longest stretch a cell went without output, against the
targets: at most 180 s per lesson on 2 CPU cores, no cell silent for more than 20 s.

    python benchmarks/standalone_lessons.py --out benchmarks/results   # ~15 minutes
    python benchmarks/standalone_lessons.py --lessons 04,09   # re-runs these two, keeps the rest

``--from-report FILE`` prints the table of an earlier run's report without running anything.
Exit status 0 when every lesson ran and met both targets, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from bench_data import cpu_flags

REPO = Path(__file__).resolve().parents[1]
SIMULATION = "tests/notebooks/test_colab_simulation.py"
MAX_SECONDS = 180.0
MAX_GAP = 20.0


def table(report: dict) -> tuple[str, bool]:
    """A Markdown table of the report's lessons and whether every lesson met both targets: the
    time is the lesson's own (kernel start included, its appended exercise solutions not); the
    silent gap counts every cell, solutions included (a learner runs those too)."""
    lines = [
        "| lesson | lesson alone | + exercises | longest silent gap (cell) | within targets |",
        "|---|---|---|---|---|",
    ]
    ok = bool(report)
    for name, row in sorted(report.get("lessons", report).items()):
        lesson = row.get("lesson_seconds", row["seconds"])
        good = not row["failed"] and lesson <= MAX_SECONDS and row["longest_gap"] <= MAX_GAP
        ok &= good
        status = "failed" if row["failed"] else ("yes" if good else "no")
        lines.append(
            f"| {name} | {lesson:.0f} s | {row.get('exercises_seconds', 0):.0f} s | "
            f"{row['longest_gap']:.1f} s ({row['longest_gap_cell']}) | {status} |"
        )
    lines.append(
        f"\ntargets: at most {MAX_SECONDS:.0f} s per lesson alone, no cell silent for more than "
        f"{MAX_GAP:.0f} s"
    )
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--lessons", default="", help="e.g. 03,04 (default: all nine)")
    parser.add_argument("--from-report", type=Path, help="tabulate this report; run nothing")
    args = parser.parse_args(argv)
    if args.from_report:
        report = json.loads(args.from_report.read_text(encoding="utf-8"))
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / "standalone_lessons.json"
        earlier = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        path.unlink(missing_ok=True)
        if args.lessons:  # a re-run of some lessons keeps the others' rows
            kept = earlier.get("lessons", earlier)
            wanted = args.lessons.split(",")
            kept = {k: v for k, v in kept.items() if not any(k.startswith(n) for n in wanted)}
            path.write_text(json.dumps(kept, indent=1) + "\n", encoding="utf-8")
        selected = [f"lesson_runs_alone_from_its_badge and {n}" for n in args.lessons.split(",")]
        env = {
            **os.environ,
            "COLAB_SIM_DEFAULTS": "1",
            "COLAB_SIM_REPORT": str(path),
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
        env.pop("FACTORY_TRAINING_CACHE", None)
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-s", SIMULATION]
        cmd += ["-k", " or ".join(f"({k})" for k in selected) if args.lessons else "runs_alone"]
        subprocess.run(cmd, cwd=REPO, env=env, check=False)
        if not path.exists():
            print(f"no report written ({path}): the simulation failed before any lesson ran")
            return 1
        report = {
            "machine": {
                "cpu": platform.processor() or platform.machine(),
                "cores": os.cpu_count(),
                "flags": cpu_flags(),
            },
            "lessons": json.loads(path.read_text(encoding="utf-8")),
        }
        path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    text, ok = table(report)
    if "machine" in report:
        machine = report["machine"]
        print(f"{machine['cores']} cores; CPU flags: {' '.join(machine['flags'])}\n")
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
