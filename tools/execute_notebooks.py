"""Re-execute notebooks in place, canonically: fresh kernel, top to bottom, default parameters.

``make notebooks`` runs this with the hub forced offline, so the stored outputs are those of
the bundled sample — the outputs nbval compares in ``make test``. Run it after an intended
change in behaviour, review the diff, commit.

    HF_HUB_OFFLINE=1 .venv/bin/python tools/execute_notebooks.py notebooks/[0-9][0-9]_*.ipynb
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def execute(path: Path, timeout: int = 1800, kernel: str = "python3") -> float:
    """Clear the outputs of ``path``, run it in a fresh kernel in its folder, write it back;
    the seconds it took."""
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "notebooks", nargs="+", type=Path, metavar="NOTEBOOK", help="executed in place, in order"
    )
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    parser.add_argument("--kernel", default="python3", help="the Jupyter kernel's name")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.notebooks if not p.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    for path in args.notebooks:
        seconds = execute(path, args.timeout, args.kernel)
        print(f"{path}: executed in {seconds:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
