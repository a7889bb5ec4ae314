"""Lessons 08-09 end to end under papermill on a small local data folder (and lesson 02's
``examples_per_intent``)."""

import json
import os
import shutil
from unittest import mock

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
def test_lesson_08_learning_curve(lessons):
    out, work, data = lessons
    run_notebook(
        "08_how_much_data.ipynb",
        out,
        data_source=str(data),
        min_samples=50,
        curve_sizes=[4, 0],
        curve_seeds=[1, 2],
        training_steps=4,
        work_dir=str(out / "work08"),
    )
    results = json.loads((out / "work08" / "learning_curve.json").read_text())
    points = {(p["method"], p["examples_per_intent"]) for p in results["curve"]}
    assert points == {
        (m, n) for m in ("TF-IDF", "frozen embeddings + LR", "fine-tuned encoder") for n in (4, 0)
    }
    assert all(0 <= p["accuracy"] <= 1 and 0 <= p["macro_f1"] <= 1 for p in results["curve"])
    assert set(results["spread_at_smallest"]) == {m for m, _ in points}


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


@pytest.mark.slow
def test_lesson_09_exports_the_lesson_3_model(lessons):
    out, work, _ = lessons
    work09 = out / "work09"
    shutil.copytree(work / "splits", work09 / "splits")
    with mock.patch.dict(os.environ, {"FACTORY_ENCODER_PRECISION": "fp32"}):
        run_notebook("02_format_data.ipynb", out / "09", work_dir=str(work09))
        run_notebook(
            "03_train_classifier.ipynb", out / "09", training_steps=12, work_dir=str(work09)
        )
        run_notebook("09_take_it_home.ipynb", out / "09", timed_utterances=5, work_dir=str(work09))
    results = json.loads((work09 / "export.json").read_text())
    job = json.loads((work09 / "job.json").read_text())
    assert results["model"] == job["fine_tuned_model"]
    assert results["agreement_with_service"]["ONNX fp32"] == 1.0
    assert results["fp32_max_difference_below_1e-4"] is True
    assert results["agreement_with_service"]["ONNX int8"] >= 0.9
    sizes = results["size_mb"]
    assert sizes["ONNX int8"] < sizes["ONNX fp32"] / 2
    for variant in ("fp32", "int8"):
        folder = work09 / "export" / variant
        assert {"model.onnx", "tokenizer.json", "labels.json", "predict.py", "README.md"} <= {
            p.name for p in folder.iterdir()
        }
