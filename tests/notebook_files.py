"""Tiny notebooks written by tests (the batch runner's, locally and on a Dask cluster)."""

from __future__ import annotations

from pathlib import Path

import nbformat


def write_notebook(path: Path, params: str, body: str, *more: str) -> Path:
    """A notebook at ``path``: a ``parameters`` cell, then ``body`` (and ``more`` cells)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
        *(nbformat.v4.new_code_cell(source) for source in (body, *more)),
    ]
    nbformat.write(nb, path)
    return path
