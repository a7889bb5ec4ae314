"""Every lesson ends with "Try it yourself" exercises whose solutions are hidden until clicked.

Each solution lives in a markdown cell tagged ``solution``, inside a collapsed ``<details>`` block
with one fenced ``python`` code block. That the solutions *run* is checked where each lesson runs
anyway: the Colab simulation appends them to the lesson and executes them after it, in the same
kernel and namespace, as a learner would (``test_colab_simulation.py``).

After the exercises, just before the generated footer, a "Check yourself" cell asks 5 to 8 short
questions on the lesson's ideas, each answer hidden in a ``<details>`` block (fastbook's
questionnaire).
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

QUESTION = re.compile(r"^\*\*(\d+)\. (?:[^*]|\*[^*])+?\?\*\*$", re.M)  # **3. Why ...?**
ANSWER = re.compile(r"<details><summary>Answer</summary>\n\n(.+?)\n\n</details>", re.S)

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


@pytest.mark.parametrize("name", list(LESSONS))
def test_lesson_ends_with_check_yourself_questions(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert "footer" in tags[-1], f"{name}: the footer must be the last cell"
    quiz = nb.cells[-2]
    assert quiz.cell_type == "markdown" and quiz.id == f"nb{name[:2]}-q1", quiz.id
    assert quiz.source.startswith("## Check yourself\n"), quiz.source[:40]
    last_solution = max(i for i, t in enumerate(tags) if "solution" in t)
    assert last_solution == len(nb.cells) - 3, f"{name}: the questions come after the exercises"
    numbers = [int(n) for n in QUESTION.findall(quiz.source)]
    answers = ANSWER.findall(quiz.source)
    assert 5 <= len(numbers) <= 8, f"{name}: {len(numbers)} questions"
    assert numbers == list(range(1, len(numbers) + 1)), numbers
    assert len(answers) == len(numbers), f"{name}: one hidden answer per question"
    assert quiz.source.count("<details>") == len(numbers)
