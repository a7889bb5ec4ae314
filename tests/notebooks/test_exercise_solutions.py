"""Every "Try it yourself" solution in lessons 01-09 runs.

Each solution lives in a markdown cell tagged ``solution``, inside a collapsed ``<details>`` block
with one fenced ``python`` code block. The test executes each lesson with small parameters
(papermill, offline, on the bundled sample), with that lesson's solutions appended as extra code
cells, so they run after the lesson in the same kernel and namespace, as a learner would run
them. Lessons run in order in one working folder, since each builds on the previous one.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import papermill as pm
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
SOLUTION = re.compile(
    r"<details>\s*<summary>Solution</summary>.*?```python\n(.*?)```.*?</details>", re.S
)

# small parameters keep the whole chain to a few minutes on a laptop CPU
LESSONS = {
    "01_explore_data.ipynb": {"data_source": "sample"},
    "02_format_data.ipynb": {},
    "03_train_classifier.ipynb": {"training_steps": 12},
    "04_inference_evaluation.ipynb": {},
    "05_multi_target.ipynb": {"data_source": "sample", "training_steps": 12},
    "06_multilingual.ipynb": {"data_source": "sample", "training_steps": 12},
    "07_out_of_scope.ipynb": {"data_source": "sample"},  # reuses lesson 03's model
    "08_how_much_data.ipynb": {
        "data_source": "sample",
        "curve_sizes": [8, 0],
        "curve_seeds": [1, 2],
        "training_steps": 4,
    },
    "09_take_it_home.ipynb": {"timed_utterances": 5},
}


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


@pytest.fixture(scope="module")
def executed(module_tmp):
    out = module_tmp("solutions")
    work = out / "work"
    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
            mp.setenv(var, "1")
        for name, params in LESSONS.items():
            nb = nbformat.read(NOTEBOOKS / name, as_version=4)
            found = solutions(nb)
            for cell_id, code in found:
                cell = nbformat.v4.new_code_cell(code)
                cell.id = f"run-{cell_id}"
                nb.cells.append(cell)
            source = out / f"in_{name}"
            nbformat.write(nb, source)
            try:
                runs[name] = pm.execute_notebook(
                    str(source),
                    str(out / name),
                    parameters={**params, "work_dir": str(work)},
                    cwd=str(NOTEBOOKS),
                    kernel_name="python3",
                    progress_bar=False,
                )
            except pm.PapermillExecutionError as error:
                runs[name] = error
    return runs


@pytest.mark.parametrize("name", list(LESSONS))
def test_every_solution_runs(executed, name):
    result = executed[name]
    if isinstance(result, Exception):
        pytest.fail(f"{name}: cell {result.cell_index} failed: {result.ename}: {result.evalue}")
    ran = [c for c in result.cells if c.get("id", "").startswith("run-")]
    assert len(ran) >= 2
    for cell in ran:
        assert cell.execution_count is not None, cell.id
        assert not [o for o in cell.outputs if o.output_type == "error"], cell.id
