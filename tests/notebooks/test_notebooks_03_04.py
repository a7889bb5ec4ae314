"""Lessons 01-04 end to end under papermill, on a local data folder, with keys in the env."""

import json
import os
from unittest import mock

import pytest
from notebook_runner import outputs_text, run_notebook

from helpers.notebook import read_results

FAKE_KEYS = {
    "MISTRAL_API_KEY": "mk-TESTKEY-7f3a9c2e51d84b6fa0c3e9d1b2a4f6e8",
    "WANDB_API_KEY": "wb0123456789abcdef0123456789abcdef012345",
}

pytestmark = pytest.mark.slow  # real training or kernels: `make test`, not test-fast


@pytest.fixture(scope="module")
def run(module_tmp, small_massive_like):
    out = module_tmp("lessons")
    work = out / "work"
    with mock.patch.dict(os.environ, FAKE_KEYS):
        books = [
            run_notebook(
                "01_explore_data.ipynb",
                out,
                data_source=str(small_massive_like),
                min_samples=50,
                work_dir=str(work),
            ),
            run_notebook("02_format_data.ipynb", out, work_dir=str(work)),
            run_notebook(
                "03_train_classifier.ipynb",
                out,
                training_steps=12,
                wandb_project="intent-tests",
                work_dir=str(work),
            ),
            run_notebook("04_inference_evaluation.ipynb", out, work_dir=str(work)),
        ]
    return books, work


def test_job_record(run):
    _, work = run
    job = json.loads((work / "job.json").read_text())
    assert job["status"] == "SUCCESS"
    assert job["base_model"] == "minilm-l6-v2"
    assert job["hyperparameters"]["training_steps"] == 12
    assert job["train_seconds"] > 0 and job["service"].startswith("http://127.0.0.1:")
    assert job["fine_tuned_model"].startswith("ft:classifier:minilm-l6-v2:")


def test_metrics_file_and_results_cell(run):
    books, work = run
    metrics = json.loads((work / "metrics.json").read_text())
    assert {"accuracy", "macro_f1", "n_test", "model", "routing"} <= set(metrics)
    assert metrics["n_test"] == 40 and 0 <= metrics["accuracy"] <= 1
    assert set(metrics["comparison"]) == {"minilm-l6-v2", "tfidf-logreg"}
    assert read_results(books[3]) == metrics  # record() shows what it writes


def test_no_key_from_the_environment_appears_anywhere(run):
    books, work = run
    for nb in books:
        text = json.dumps(nb)
        for key in FAKE_KEYS.values():
            assert key not in text
    for path in work.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for key in FAKE_KEYS.values():
                assert key.encode() not in data, path


def test_wandb_integration_is_echoed_without_its_key(run):
    books, _ = run
    text = outputs_text(books[2])
    assert '"project": "intent-tests"' in text
