"""The README's commands, timed in fresh clones: the budgets of issue 25.

Usage (from the repo root; takes as long as the commands, ~45 min on 2 cores)::

    .venv/bin/python benchmarks/budgets.py [--steps run test-fast test] [--out FILE]

Each step runs in its own fresh ``git clone`` of this repository's HEAD under a temporary
folder, as a newcomer would: ``run`` times ``make run`` (install included), ``test-fast``
times ``make install`` and then ``make test-fast`` on its own, ``test`` times ``make test``
(install included). "Warm" means the pip cache and the Colab simulation's package layer
(``~/.cache/intent-tutorials``) are already there; the script records whether they were. It
also records the clone's disk use after the step (``.venv/``, ``artifacts/``), the peak disk
use of the file system during the step (polled every 10 s), the exit status, the CPU flags
and the load average, and appends one JSON line per step to ``results/budgets.jsonl``.
Commit first: the clones see only committed work.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import bench_data

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "budgets.jsonl"
BUDGETS_S = {"run": 600, "test-fast": 60, "test": 1500}
COMMANDS = {"run": ["make", "run"], "test-fast": ["make", "test-fast"], "test": ["make", "test"]}


def du_mb(path: Path) -> float | None:
    if not path.exists():
        return None
    out = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True).stdout
    return float(out.split()[0]) if out else None


def used_mb(path: Path) -> float:
    usage = shutil.disk_usage(path)
    return (usage.total - usage.free) / 2**20


def warm_state() -> dict:
    layer = Path(
        os.environ.get("INTENT_TUTORIALS_CACHE") or Path.home() / ".cache/intent-tutorials"
    )
    pip_cache = subprocess.run(
        ["python3", "-m", "pip", "cache", "dir"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "colab_layer_present": layer.exists() and any(layer.iterdir()),
        "pip_cache_mb": du_mb(Path(pip_cache)) if pip_cache else None,
    }


def run_step(step: str, work: Path, log: Path, command: list[str] | None = None) -> dict:
    clone = work / f"clone-{step}"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    before = warm_state()
    command = command or COMMANDS[step]
    if step == "test-fast" and command == COMMANDS[step]:  # install: not in the one-minute loop
        subprocess.run(["make", "install"], cwd=clone, check=True, capture_output=True)
    start_used = used_mb(work)
    peak = {"mb": start_used}
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(10):
            peak["mb"] = max(peak["mb"], used_mb(work))

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    started = time.monotonic()
    with open(log, "w", encoding="utf-8") as out:
        code = subprocess.run(command, cwd=clone, stdout=out, stderr=out, env=env).returncode
    seconds = time.monotonic() - started
    stop.set()
    watcher.join()
    tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-3:]
    return {
        "step": step,
        "command": " ".join(command),
        "exit": code,
        "seconds": round(seconds, 1),
        "budget_s": BUDGETS_S[step],
        "within_budget": code == 0 and seconds <= BUDGETS_S[step],
        "venv_mb": du_mb(clone / ".venv"),
        "artifacts_mb": du_mb(clone / "artifacts"),
        "peak_disk_growth_mb": round(peak["mb"] - start_used, 1),
        "last_lines": tail,
        **before,
        "cpu_flags": bench_data.cpu_flags(),
        "nproc": os.cpu_count(),
        "load1_after": round(os.getloadavg()[0], 2),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True
        ).stdout.strip(),
        "when": time.strftime("%Y-%m-%d %H:%M"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", nargs="+", choices=list(COMMANDS), default=list(COMMANDS))
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--keep", action="store_true", help="keep the clones (default: removed)")
    ap.add_argument(
        "--instead",
        metavar="COMMAND",
        help="run COMMAND (split on spaces) in each clone instead of make: checks this script",
    )
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="budgets-"))
    failed = 0
    try:
        for step in args.steps:
            instead = args.instead.split() if args.instead else None
            row = run_step(step, work, work / f"{step}.log", instead)
            failed += row["exit"] != 0
            print(json.dumps(row), flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            if not args.keep:
                shutil.rmtree(work / f"clone-{step}", ignore_errors=True)
    finally:
        print(f"logs: {work}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
