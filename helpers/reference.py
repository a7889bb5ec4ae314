"""What each lesson's headline numbers were on the real MASSIVE data, beside this run's.

The stored outputs come from the bundled sample; a Colab user trains on MASSIVE from the hub.
``benchmarks/massive_reference.py`` runs the lessons, unchanged, on MASSIVE's English data and
writes what each one recorded to ``helpers/reference_results/massive_en.json``; :func:`beside`
reads it (never a typed number) and shows it next to the numbers of the run in front of you.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

REFERENCE_FILE = Path(__file__).with_name("reference_results") / "massive_en.json"

HEADLINES: dict[str, list[tuple[str, str]]] = {
    "01_explore_data": [
        ("n_intents", "intents kept"),
        ("train", "training rows"),
        ("validation", "validation rows"),
        ("test", "test rows"),
        ("duplicates_across_splits", "texts repeated across splits"),
        ("test_ceiling", "best test accuracy the labels allow"),
    ],
    "02_format_data": [
        ("files.train.jsonl.lines", "lines in train.jsonl"),
        ("errors", "validator errors"),
        ("warnings", "validator warnings"),
    ],
    "03_train_classifier": [
        ("step0_valid_accuracy", "validation accuracy at step 0 (warm start)"),
        ("valid_accuracy", "validation accuracy after fine-tuning"),
        ("hand_loop_valid_accuracy", "validation accuracy of the head trained by hand"),
        ("hyperparameters.epochs", "epochs the training steps amount to"),
    ],
    "04_inference_evaluation": [
        ("accuracy", "test accuracy, fine-tuned encoder"),
        ("macro_f1", "test macro-F1, fine-tuned encoder"),
        ("comparison.tfidf-logreg.accuracy", "test accuracy, TF-IDF"),
        ("routing.threshold", "routing threshold chosen on validation"),
        ("routing.coverage", "share of test traffic routed"),
        ("routing.accuracy", "accuracy on the routed traffic"),
    ],
    "05_multi_target": [
        ("per_target.intent.accuracy", "intent head, test accuracy"),
        ("per_target.scenario.accuracy", "scenario head, test accuracy"),
        ("heads_agree", "share of test utterances where the heads agree"),
        ("versus_intent_only.difference", "intent accuracy minus lesson 3's model"),
        ("versus_intent_only.mcnemar_p", "McNemar p-value of that difference"),
    ],
    "07_out_of_scope": [
        ("methods.max_softmax.auroc", "AUROC, max softmax"),
        ("methods.nearest_neighbour.auroc", "AUROC, nearest training utterance"),
        ("choice.method", "method chosen by cost"),
        ("choice.test_cost", "test cost per utterance, with rejection"),
        ("choice.no_rejection_test_cost", "test cost per utterance, rejecting nothing"),
        ("choice.oos_recall", "out-of-scope recall at the chosen threshold"),
        ("choice.in_scope_accuracy", "in-scope accuracy at the chosen threshold"),
    ],
    "08_how_much_data": [
        ("curve.fine-tuned encoder.8", "encoder, 8 examples per intent"),
        ("curve.fine-tuned encoder.64", "encoder, 64 examples per intent"),
        ("curve.fine-tuned encoder.0", "encoder, all rows"),
        ("curve.TF-IDF.8", "TF-IDF, 8 examples per intent"),
        ("curve.TF-IDF.64", "TF-IDF, 64 examples per intent"),
        ("curve.TF-IDF.0", "TF-IDF, all rows"),
    ],
    "09_take_it_home": [
        ("size_mb.ONNX int8", "ONNX int8 size (MB)"),
        ("int8_agreement_with_torch", "int8 predictions equal to fp32"),
    ],
}
"""Per lesson: (key in the lesson's recorded results, what it is). Dots walk nested dicts;
``curve.<method>.<examples per intent>`` reads lesson 8's list of curve points."""

NOT_RUN = {
    "06_multilingual": "lesson 6 trains on French MASSIVE, and the reference run had MASSIVE's "
    "English data only",
}


@cache
def load(path: Path = REFERENCE_FILE) -> dict:
    """The reference file (see the module docstring)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def lookup(results: Mapping[str, Any], key: str) -> Any:
    """``key`` in a lesson's results: dotted for nested dicts, ``curve.<method>.<n>`` for a
    lesson-8 curve point; ``None`` when absent."""
    if key.startswith("curve."):
        _, method, n = key.split(".", 2)
        for point in results.get("curve", []):
            if point.get("method") == method and str(point.get("examples_per_intent")) == n:
                return point.get("accuracy")
        return None
    value: Any = results
    rest = key
    while rest:  # keys may hold dots themselves ("train.jsonl"): try the longest first
        if not isinstance(value, Mapping):
            return None
        for cut in [len(rest), *sorted((i for i, c in enumerate(rest) if c == "."), reverse=True)]:
            if rest[:cut] in value:
                value, rest = value[rest[:cut]], rest[cut + 1 :]
                break
        else:
            return None
    return value


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if not isinstance(value, float):
        return str(value)
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3f}"


def beside(lesson: str, results: Mapping[str, Any], path: Path = REFERENCE_FILE):
    """A table of ``lesson``'s headline numbers: this run's ``results`` next to the reference
    run's on MASSIVE (a pandas DataFrame), or a sentence saying why there is none."""
    import pandas as pd

    if lesson in NOT_RUN:
        return f"No MASSIVE reference for this lesson: {NOT_RUN[lesson]}."
    if not Path(path).is_file():
        return f"No MASSIVE reference: {path} is missing (massive_reference.py writes it)."
    reference = load(path)
    theirs = reference["lessons"].get(lesson)
    if theirs is None:
        return f"No MASSIVE reference for {lesson} in {Path(path).name}."
    rows = [
        {
            "number": label,
            "this run": _show(lookup(results, key)),
            "MASSIVE (reference run)": _show(lookup(theirs, key)),
        }
        for key, label in HEADLINES[lesson]
    ]
    return pd.DataFrame(rows).set_index("number")


def describe(path: Path = REFERENCE_FILE) -> str:
    """One sentence on where the reference numbers come from."""
    if not Path(path).is_file():
        return f"No MASSIVE reference file: {path} is missing."
    ref = load(path)
    return (
        f"MASSIVE reference: {ref['data']}, the lessons' default parameters; written by "
        f"{ref['written_by']} on {ref['date']}."
    )
