"""Re-execute notebooks in place, canonically: fresh kernel, top to bottom, default parameters.

``make notebooks`` runs this with the hub forced offline, so the stored outputs are those of
the bundled sample — the outputs nbval compares in ``make test``. Run it after an intended
change in behaviour, review the diff, commit.

    HF_HUB_OFFLINE=1 .venv/bin/python tools/execute_notebooks.py notebooks/[0-9][0-9]_*.ipynb
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

# nbformat and nbclient are imported where they are used, after the arguments are parsed:
# ``--help`` stays fast.


def execute(path: Path, timeout: int = 1800, kernel: str = "python3") -> float:
    """Clear the outputs of ``path``, run it in a fresh kernel in its folder, write it back;
    the seconds it took."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    start = time.perf_counter()
    NotebookClient(
        nb, timeout=timeout, kernel_name=kernel, resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    for cell in nb.cells:
        cell.metadata.pop("execution", None)  # timestamps would make every run a diff
    nbformat.write(nb, path)
    return time.perf_counter() - start


RUNTIMES = Path(__file__).resolve().parents[1] / "notebooks" / "runtimes.json"


def machine() -> dict:
    """What the recorded seconds were measured on (CPU model, cores, vector extensions)."""
    flags: list[str] = []
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("", platform.machine()):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                flags = sorted(f for f in have if f.startswith(("avx", "amx")))
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "flags": flags}


def record_runtime(path: Path, seconds: float, file: Path = RUNTIMES) -> None:
    """Keep ``seconds`` for the lesson ``path`` in ``notebooks/runtimes.json`` (the README's
    runtime column is generated from it by ``tools/sync_notebooks.py``)."""
    data = json.loads(file.read_text()) if file.exists() else {"lessons": {}}
    data["lessons"][path.name] = round(seconds)
    data["machine"] = machine()
    data["how"] = (
        "tools/execute_notebooks.py (make notebooks): a fresh kernel per lesson, in order, "
        "default parameters, offline sample; lessons 4, 7 and 9 reuse lesson 3's model"
    )
    data["lessons"] = dict(sorted(data["lessons"].items()))
    file.write_text(json.dumps(data, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "notebooks", nargs="+", type=Path, metavar="NOTEBOOK", help="executed in place, in order"
    )
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    parser.add_argument("--kernel", default="python3", help="the Jupyter kernel's name")
    parser.add_argument(
        "--no-record",
        action="store_true",
        help="do not write the lessons' runtimes to notebooks/runtimes.json",
    )
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.notebooks if not p.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    for path in args.notebooks:
        seconds = execute(path, args.timeout, args.kernel)
        print(f"{path}: executed in {seconds:.0f} s", flush=True)
        if not args.no_record and path.resolve().parent == RUNTIMES.parent:
            record_runtime(path, seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
