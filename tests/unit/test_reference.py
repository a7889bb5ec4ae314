"""The MASSIVE reference numbers beside each lesson's (issue 27, item 3): read from the file
``benchmarks/massive_reference.py`` wrote, never typed; every headline key resolves both in the
committed file and in the lesson's own stored results."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from helpers import reference
from helpers.notebook import read_results

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
LESSONS = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def test_lookup_walks_nested_keys_keys_with_dots_and_the_curve():
    results = {
        "a": {"b": 1},
        "files": {"train.jsonl": {"lines": 7}},
        "curve": [{"method": "TF-IDF", "examples_per_intent": 8, "accuracy": 0.5}],
    }
    assert reference.lookup(results, "a.b") == 1
    assert reference.lookup(results, "files.train.jsonl.lines") == 7
    assert reference.lookup(results, "curve.TF-IDF.8") == 0.5
    assert reference.lookup(results, "curve.TF-IDF.16") is None
    assert reference.lookup(results, "a.c") is None and reference.lookup(results, "x") is None


def test_every_lesson_is_either_compared_or_says_why_not():
    assert sorted([*reference.HEADLINES, *reference.NOT_RUN]) == LESSONS


def test_the_committed_file_was_written_by_the_script_on_massive():
    ref = reference.load()
    assert ref["written_by"] == "benchmarks/massive_reference.py"
    assert ref["data_source"] == "massive_en" and "MASSIVE" in ref["data"]
    assert sorted(ref["lessons"]) == sorted(reference.HEADLINES)
    assert "flags" in ref["machine"] and ref["commit"] != "unknown"


@pytest.mark.parametrize("lesson", sorted(reference.HEADLINES))
def test_every_headline_resolves_in_the_file_and_in_the_lessons_stored_results(lesson):
    stored = read_results(NOTEBOOKS / f"{lesson}.ipynb")
    theirs = reference.load()["lessons"][lesson]
    for key, _ in reference.HEADLINES[lesson]:
        assert reference.lookup(theirs, key) is not None, f"{key} missing from the reference"
        assert reference.lookup(stored, key) is not None, f"{key} missing from {lesson}'s results"


@pytest.mark.parametrize("lesson", LESSONS)
def test_each_lesson_shows_the_reference_after_its_results(lesson):
    nb = nbformat.read(NOTEBOOKS / f"{lesson}.ipynb", as_version=4)
    sources = [c.source for c in nb.cells if c.cell_type == "code"]
    calls = [i for i, s in enumerate(sources) if f'reference.beside("{lesson}", results)' in s]
    recorded = [i for i, s in enumerate(sources) if "record(" in s]
    assert len(calls) == 1 and recorded and calls[0] > recorded[-1]


def test_beside_puts_both_columns_side_by_side(tmp_path):
    path = tmp_path / "ref.json"
    ours = {"accuracy": 0.9, "macro_f1": 0.8, "comparison": {"tfidf-logreg": {"accuracy": 0.7}}}
    path.write_text(json.dumps({"lessons": {"04_inference_evaluation": {"accuracy": 0.95}}}))
    table = reference.beside("04_inference_evaluation", ours, path=path)
    assert table.loc["test accuracy, fine-tuned encoder"].tolist() == ["0.900", "0.950"]
    assert table.loc["test accuracy, TF-IDF"].tolist() == ["0.700", "-"]
    assert "French" in reference.beside("06_multilingual", ours, path=path)


def test_what_each_lesson_reads_in_the_reference_holds():
    """The prose before each table states relations between the columns; they must hold."""

    stored = {lesson: read_results(NOTEBOOKS / f"{lesson}.ipynb") for lesson in reference.HEADLINES}

    def both(lesson, key):
        ours = reference.lookup(stored[lesson], key)
        return ours, reference.lookup(reference.load()["lessons"][lesson], key)

    assert both("01_explore_data", "n_intents") == (16, 16)
    ours, theirs = both("01_explore_data", "train")
    assert 1.3 < theirs / ours < 1.7  # "about one and a half times the sample's rows"
    assert both("01_explore_data", "test_ceiling") == (1.0, 1.0)
    leaked = both("01_explore_data", "duplicates_across_splits")
    assert leaked[0] == 0 and 8 <= leaked[1] <= 15  # "a dozen ... across the splits"
    assert both("02_format_data", "warnings")[0] == 0 < both("02_format_data", "warnings")[1]
    start, end = (
        both("03_train_classifier", "step0_valid_accuracy"),
        both("03_train_classifier", "valid_accuracy"),
    )
    hand = both("03_train_classifier", "hand_loop_valid_accuracy")
    assert start[1] < start[0] and end[1] < end[0] and end[1] > start[1] and hand[1] < start[1]
    epochs = both("03_train_classifier", "hyperparameters.epochs")
    assert epochs[1] < epochs[0]
    encoder = both("04_inference_evaluation", "accuracy")
    tfidf = both("04_inference_evaluation", "comparison.tfidf-logreg.accuracy")
    assert abs(encoder[0] - tfidf[0]) < 0.01 and encoder[1] - tfidf[1] > 0.03  # README too
    threshold, coverage = (
        both("04_inference_evaluation", f"routing.{k}") for k in ("threshold", "coverage")
    )
    assert threshold[1] > threshold[0] and coverage[1] < coverage[0]
    agree = both("05_multi_target", "heads_agree")
    assert agree[1] < agree[0] and both("05_multi_target", "versus_intent_only.mcnemar_p")[1] > 0.05
    for method in ("max_softmax", "nearest_neighbour"):
        auroc = both("07_out_of_scope", f"methods.{method}.auroc")
        assert auroc[1] < auroc[0]
    assert both("07_out_of_scope", "choice.method")[1] == "max_softmax"
    lead = {
        n: [
            e - t
            for e, t in zip(
                both("08_how_much_data", f"curve.fine-tuned encoder.{n}"),
                both("08_how_much_data", f"curve.TF-IDF.{n}"),
                strict=True,
            )
        ]
        for n in (8, 64, 0)
    }
    assert lead[8][1] > lead[64][1] > lead[0][1] > 0 and abs(lead[0][0]) < 0.01
    size = both("09_take_it_home", "size_mb.ONNX int8")
    assert size[0] == size[1] and min(both("09_take_it_home", "int8_agreement_with_torch")) > 0.99
