"""helpers.pipeline: a lesson's missing inputs are recreated from the shared parameters."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from helpers import data, formatting, pipeline, training
from helpers import notebook as notebook_helpers
from helpers.factory import stop_local_factory

ROOT = Path(__file__).resolve().parents[2]


def parameter_defaults(notebook: str) -> dict:
    nb = nbformat.read(ROOT / "notebooks" / notebook, as_version=4)
    return {
        name: value
        for name, (value, _) in notebook_helpers.parameter_defaults(
            notebook_helpers.parameters_cell(nb).source
        ).items()
    }


def test_defaults_are_those_of_the_lessons_that_produce_each_step():
    defaults = {
        name: p.default
        for name, p in inspect.signature(pipeline.ensure).parameters.items()
        if p.kind is p.KEYWORD_ONLY or name == "work_dir"
    }
    producers = {
        **parameter_defaults("01_explore_data.ipynb"),
        **parameter_defaults("03_train_classifier.ipynb"),
    }
    for name, value in defaults.items():
        assert name in producers, f"ensure({name}=...) is not a parameter of lesson 01 or 03"
        assert producers[name] == value and type(producers[name]) is type(value), name


def fake_lessons(work: Path, source: Path) -> None:
    """What lessons 01 and 02 write, done by hand with the same helpers."""
    splits = data.load_splits(str(source), "en", 50, 600, 42)
    data.save_splits(splits, work)
    for name in data.SPLITS:
        formatting.dataset_to_jsonl(getattr(splits, name), work / f"{name}.jsonl")


def test_missing_splits_and_files_are_made_as_lessons_01_02_make_them(
    small_massive_like, tmp_path, capsys
):
    lessons, alone = tmp_path / "lessons", tmp_path / "alone"
    fake_lessons(lessons, small_massive_like)
    inputs = pipeline.ensure("jsonl", alone, data_source=str(small_massive_like), min_samples=50)

    line = capsys.readouterr().out.strip()
    assert "\n" not in line, "one line"
    assert re.fullmatch(
        r"pipeline: work_dir lacked splits/, train\.jsonl, validation\.jsonl, test\.jsonl, "
        r"so it redid lesson\(s\) 01, 02: made the splits from local folder .+ "
        r"\(lang='en', seed=42\); wrote the JSONL training files — \d+ s",
        line,
    ), line
    assert inputs.recreated == ("splits", "jsonl") and inputs.work_dir == alone
    for name in data.SPLITS:
        pd.testing.assert_frame_equal(
            pd.read_parquet(alone / "splits" / f"{name}.parquet"),
            pd.read_parquet(lessons / "splits" / f"{name}.parquet"),
        )
        assert inputs.jsonl(name).read_bytes() == (lessons / f"{name}.jsonl").read_bytes()


def test_inputs_that_are_there_are_reused_untouched(small_massive_like, tmp_path, capsys):
    fake_lessons(tmp_path, small_massive_like)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    # a different data_source would give other splits: it must not matter when files exist
    inputs = pipeline.ensure("jsonl", tmp_path, data_source="sample")
    assert capsys.readouterr().out == (
        "pipeline: splits/, *.jsonl already in work_dir; reusing them\n"
    )
    assert inputs.recreated == () and inputs.seconds == 0.0
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == before


def test_only_the_missing_step_reruns(small_massive_like, tmp_path, capsys):
    fake_lessons(tmp_path, small_massive_like)
    splits_time = (tmp_path / "splits" / "train.parquet").stat().st_mtime_ns
    expected = (tmp_path / "test.jsonl").read_bytes()
    (tmp_path / "test.jsonl").unlink()
    inputs = pipeline.ensure("jsonl", tmp_path, data_source="sample")
    assert inputs.recreated == ("jsonl",)
    assert "lacked test.jsonl, so it redid lesson(s) 02:" in capsys.readouterr().out
    assert (tmp_path / "test.jsonl").read_bytes() == expected  # from the saved splits
    assert (tmp_path / "splits" / "train.parquet").stat().st_mtime_ns == splits_time


def test_new_splits_make_the_files_after_them_again(small_massive_like, tmp_path):
    (tmp_path / "train.jsonl").write_text("stale\n")
    for name in ("validation", "test"):
        (tmp_path / f"{name}.jsonl").write_text("stale\n")
    inputs = pipeline.ensure("jsonl", tmp_path, data_source=str(small_massive_like), min_samples=50)
    assert inputs.recreated == ("splits", "jsonl")
    assert (tmp_path / "train.jsonl").read_text() != "stale\n"


def test_a_model_cannot_be_recreated_on_the_retired_mistral_backend(small_massive_like, tmp_path):
    fake_lessons(tmp_path, small_massive_like)
    with pytest.raises(RuntimeError, match=r"job\.json is missing and backend='mistral' cannot "):
        pipeline.ensure("model", tmp_path, backend="mistral")
    assert not (tmp_path / "job.json").exists()


def test_unknown_step_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"step='modle': use one of 'splits', 'jsonl', 'model'"):
        pipeline.ensure("modle", tmp_path)


@pytest.mark.slow  # trains on a service process
def test_missing_model_is_trained_on_the_local_service_and_recorded_like_lesson_03(
    small_massive_like, tmp_path, capsys
):
    try:
        inputs = pipeline.ensure(
            "model",
            tmp_path,
            data_source=str(small_massive_like),
            min_samples=50,
            base_model="tfidf-logreg",
            training_steps=10,
        )
        out = capsys.readouterr().out
        line = out.strip().splitlines()[-1]
        assert inputs.recreated == ("splits", "jsonl", "model")
        # said before it trains, and a progress bar while it trains (nothing silent for minutes)
        assert out.startswith("pipeline: no trained model in work_dir: training lesson 03's")
        assert "SUCCESS: 100%" in out
        record = json.loads(inputs.job_file.read_text())
        assert record["status"] == "SUCCESS" and record["base_model"] == "tfidf-logreg"
        assert record["hyperparameters"]["training_steps"] == 10
        assert f"trained {record['fine_tuned_model']} (tfidf-logreg, 10 steps)" in line
        # the same keys as lesson 03's record, and the model answers on the service
        client, service = training.connect("local", tmp_path)
        assert record["service"] == service
        job = client.fine_tuning.jobs.get(job_id=record["job_id"])
        assert set(record) == set(training.job_record(job, service))
        answer = client.classifiers.classify(
            model=record["fine_tuned_model"], inputs=["wake me up at seven"]
        )
        assert len(answer.results) == 1
        assert pipeline.ensure("model", tmp_path).recreated == ()
    finally:
        stop_local_factory(tmp_path / "factory")
