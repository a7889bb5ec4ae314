"""Every lesson ends with "Try it yourself" exercises whose solutions are hidden until clicked.

Each solution lives in a markdown cell tagged ``solution``, inside a collapsed ``<details>`` block
with one fenced ``python`` code block. That the solutions *run* is checked where each lesson runs
anyway: the Colab simulation appends them to the lesson and executes them after it, in the same
kernel and namespace, as a learner would (``test_colab_simulation.py``).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
SOLUTION = re.compile(
    r"<details>\s*<summary>Solution</summary>.*?```python\n(.*?)```.*?</details>", re.S
)

LESSONS = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def solutions(nb) -> list[tuple[str, str]]:
    """(cell id, code) of every solution in a notebook, in order."""
    found = []
    for cell in nb.cells:
        if "solution" in cell.metadata.get("tags", []):
            assert cell.cell_type == "markdown", f"{cell.id}: a solution cell must be markdown"
            codes = SOLUTION.findall(cell.source)
            assert len(codes) == 1, f"{cell.id}: expected one <details> block with python code"
            found.append((cell.id, codes[0]))
    return found


@pytest.mark.parametrize("name", list(LESSONS))
def test_lesson_ends_with_exercises_and_solutions(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    found = solutions(nb)
    assert 2 <= len(found) <= 3, f"{name}: {len(found)} exercises"
    headings = [
        line
        for c in nb.cells
        if c.cell_type == "markdown"
        for line in c.source.splitlines()
        if line.startswith("## ")
    ]
    assert "## Try it yourself" in headings, name
    assert "## What the numbers show" in headings, name
