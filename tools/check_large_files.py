"""Exit 1 when a file given on the command line is larger than ``--max-kb`` (pre-commit hook).

Datasets, model weights and executed copies of the notebooks belong outside the repository;
the committed notebooks and the bundled 1.3 MB sample stay under the hook's 2 MB limit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def too_large(paths: list[str], max_kb: int) -> list[tuple[str, int]]:
    sizes = ((p, Path(p).stat().st_size) for p in paths if Path(p).is_file())
    return [(p, size) for p, size in sizes if size > max_kb * 1024]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-kb", type=int, default=1024)
    parser.add_argument("paths", nargs="*")
    args = parser.parse_args(argv)
    found = too_large(args.paths, args.max_kb)
    for path, size in found:
        print(f"{path}: {size / 1024:.0f} kB, over the {args.max_kb} kB limit", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
