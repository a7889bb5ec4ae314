"""Lessons 02 and 08 refuse bad parameters; lesson 02 keeps ``examples_per_intent`` (papermill,
on a small local data folder). Lessons 08 and 09 running end to end, and what they write, are
checked on their standalone runs in ``test_colab_simulation.py``."""

import json

import papermill as pm
import pytest
from notebook_runner import run_notebook


@pytest.fixture(scope="module")
def lessons(module_tmp, small_massive_like):
    out = module_tmp("lessons_08_09")
    work = out / "work"
    run_notebook(
        "01_explore_data.ipynb",
        out,
        data_source=str(small_massive_like),
        min_samples=50,
        work_dir=str(work),
    )
    return out, work, small_massive_like


@pytest.mark.slow
def test_lesson_02_keeps_examples_per_intent(lessons):
    out, work, _ = lessons
    run_notebook("02_format_data.ipynb", out, examples_per_intent=8, seed=3, work_dir=str(work))
    rows = [json.loads(line) for line in (work / "train.jsonl").read_text().splitlines()]
    counts = {}
    for row in rows:
        counts[row["labels"]["intent"]] = counts.get(row["labels"]["intent"], 0) + 1
    assert set(counts.values()) == {8} and len(counts) == 4
    valid = (work / "validation.jsonl").read_text().splitlines()
    assert len(valid) > 8 * 4 / 2  # validation is never reduced


@pytest.mark.slow
@pytest.mark.parametrize("value", [-1, 2.5])
def test_lesson_02_refuses_out_of_range_values(lessons, value):
    out, work, _ = lessons
    with pytest.raises(pm.PapermillExecutionError, match=r"examples_per_intent="):
        run_notebook(
            "02_format_data.ipynb", out / "bad", examples_per_intent=value, work_dir=str(work)
        )


@pytest.mark.slow
def test_lesson_08_refuses_out_of_range_sizes(lessons):
    out, _, data = lessons
    with pytest.raises(pm.PapermillExecutionError, match=r"examples_per_intent=-8"):
        run_notebook(
            "08_how_much_data.ipynb",
            out / "bad08",
            data_source=str(data),
            curve_sizes=[-8],
            work_dir=str(out / "bad08" / "work"),
        )
