"""Classify a test set through the API and measure the classifier honestly."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import classification_report, confusion_matrix, f1_score
from tqdm.std import tqdm

from helpers.text_batches import length_sorted_batches

RETRY_STATUSES = {429, 500, 502, 503, 504}


def _retryable(error: Exception) -> bool:
    if getattr(error, "status_code", None) in RETRY_STATUSES:
        return True
    name = type(error).__name__
    return name in {"ConnectError", "ReadTimeout", "ConnectTimeout", "RemoteProtocolError"}


def with_retries(call, retries: int = 5, backoff_seconds: float = 1.0):
    """``call()``, retried with exponential back-off on 429/5xx answers and dropped
    connections (the SDK itself does not retry by default); other errors are raised at once."""
    for attempt in range(retries + 1):
        try:
            return call()
        except Exception as error:
            if attempt == retries or not _retryable(error):
                raise
            time.sleep(backoff_seconds * 2**attempt)
    raise AssertionError("unreachable")


def classify_all(
    client,
    model: str,
    texts: Sequence[str],
    batch_size: int = 64,
    retries: int = 5,
    backoff_seconds: float = 1.0,
    progress: bool = True,
) -> list[dict]:
    """``client.classifiers.classify`` over all ``texts``, with retries (:func:`with_retries`).

    Texts go in batches of similar length (:func:`length_sorted_batches`); the results come back
    in the order of ``texts``: one ``{target: {label: score}}`` dict per text.
    """
    results: list[dict | None] = [None] * len(texts)
    bar = tqdm(
        total=len(texts),
        unit="utt",
        file=sys.stdout,
        disable=not progress,
        mininterval=1.0,
        dynamic_ncols=True,
    )
    try:
        for idx in length_sorted_batches(texts, batch_size):
            batch = [texts[i] for i in idx]
            response = with_retries(
                lambda batch=batch: client.classifiers.classify(model=model, inputs=batch),
                retries,
                backoff_seconds,
            )
            for i, item in zip(idx, response.results, strict=True):
                results[i] = {target: dict(value.scores) for target, value in item.items()}
            bar.update(len(batch))
    finally:
        bar.close()
    return results  # type: ignore[return-value]  # every slot is filled


def predictions_frame(
    texts: Sequence[str], truth: Sequence[str], scores: Sequence[Mapping], target: str = "intent"
) -> pd.DataFrame:
    """One row per utterance: true label, predicted label, confidence (top score), correct."""
    rows = []
    for text, true, result in zip(texts, truth, scores, strict=True):
        label_scores = result[target]
        predicted = max(label_scores, key=label_scores.get)
        rows.append(
            {
                "text": text,
                "true": true,
                "predicted": predicted,
                "confidence": float(label_scores[predicted]),
            }
        )
    df = pd.DataFrame(rows)
    df["correct"] = df["true"] == df["predicted"]
    return df


def summary_metrics(df: pd.DataFrame) -> dict:
    return {
        "accuracy": float(df["correct"].mean()),
        "macro_f1": float(f1_score(df["true"], df["predicted"], average="macro", zero_division=0)),
        "n_test": int(len(df)),
    }


def per_label_table(df: pd.DataFrame) -> pd.DataFrame:
    """Precision, recall, F1 and support per label, worst F1 first."""
    labels = sorted(set(df["true"]) | set(df["predicted"]))
    report = classification_report(
        df["true"], df["predicted"], labels=labels, output_dict=True, zero_division=0
    )
    table = pd.DataFrame({label: report[label] for label in labels}).T
    table["support"] = table["support"].astype(int)
    return table.sort_values(["f1-score", "support"]).round(3)


def confusion(df: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    labels = sorted(set(df["true"]) | set(df["predicted"]))
    return confusion_matrix(df["true"], df["predicted"], labels=labels), labels


def confused_pairs(df: pd.DataFrame, top: int = 5, examples: int = 2) -> pd.DataFrame:
    """The most frequent (true → predicted) mistakes, with example utterances."""
    wrong = df[~df["correct"]]
    if wrong.empty:
        return pd.DataFrame(columns=["true", "predicted", "errors", "examples"])
    pairs = (
        wrong.groupby(["true", "predicted"])
        .agg(errors=("text", "size"), examples=("text", list))
        .reset_index()
        .sort_values(["errors", "true", "predicted"], ascending=[False, True, True])
        .head(top)
    )
    pairs["examples"] = pairs["examples"].map(lambda xs: " | ".join(sorted(xs)[:examples]))
    return pairs.reset_index(drop=True)


def most_confident_errors(df: pd.DataFrame, top: int = 8) -> pd.DataFrame:
    """The wrong predictions the model was surest of (fast.ai's "top losses"), surest first.

    Confident mistakes are worth reading one by one: they are often a label that could be
    argued either way, or an utterance that fits two intents, rather than a model that is
    merely unsure.
    """
    wrong = df[~df["correct"]]
    cols = ["text", "true", "predicted", "confidence"]
    ordered = wrong.sort_values(["confidence", "text"], ascending=[False, True], kind="stable")
    return ordered[cols].head(top).reset_index(drop=True)


def confidence_summary(df: pd.DataFrame, sure: float = 0.95) -> dict:
    """Median confidence of right and of wrong predictions, and how many errors were "sure"
    (confidence >= ``sure``)."""
    right, wrong = df[df["correct"]], df[~df["correct"]]
    return {
        "median_right": float(right["confidence"].median()) if len(right) else float("nan"),
        "median_wrong": float(wrong["confidence"].median()) if len(wrong) else float("nan"),
        "errors": int(len(wrong)),
        "sure_errors": int((wrong["confidence"] >= sure).sum()),
        "sure": sure,
    }


def threshold_table(df: pd.DataFrame, steps: int = 100) -> pd.DataFrame:
    """For each confidence threshold: share of traffic at or above it, and accuracy there."""
    rows = []
    for threshold in np.linspace(0, 1, steps + 1)[:-1]:
        routed = df[df["confidence"] >= threshold]
        rows.append(
            {
                "threshold": round(float(threshold), 4),
                "coverage": len(routed) / len(df),
                "accuracy": float(routed["correct"].mean()) if len(routed) else np.nan,
            }
        )
    return pd.DataFrame(rows)


def threshold_for_precision(df: pd.DataFrame, precision: float = 0.95) -> dict:
    """The lowest threshold whose routed utterances are at least ``precision`` accurate."""
    table = threshold_table(df, steps=1000)
    ok = table[table["accuracy"] >= precision]
    if ok.empty:
        return {"precision": precision, "threshold": None, "coverage": 0.0}
    best = ok.iloc[0]
    return {
        "precision": precision,
        "threshold": float(best["threshold"]),
        "coverage": float(best["coverage"]),
        "accuracy": float(best["accuracy"]),
    }


def apply_threshold(df: pd.DataFrame, threshold: float | None) -> dict:
    """What a threshold chosen elsewhere does here: share routed and accuracy of the routed."""
    if threshold is None:
        return {"threshold": None, "coverage": 0.0, "accuracy": float("nan"), "routed": 0}
    routed = df[df["confidence"] >= threshold]
    return {
        "threshold": float(threshold),
        "coverage": len(routed) / len(df) if len(df) else 0.0,
        "accuracy": float(routed["correct"].mean()) if len(routed) else float("nan"),
        "routed": int(len(routed)),
    }


def _macro_f1(true: np.ndarray, predicted: np.ndarray, n_labels: int) -> float:
    """Macro-F1 of integer-coded labels, as scikit-learn computes it (labels seen in either)."""
    tp = np.bincount(true[true == predicted], minlength=n_labels)
    denominator = np.bincount(true, minlength=n_labels) + np.bincount(predicted, minlength=n_labels)
    present = denominator > 0
    return float(np.mean(2 * tp[present] / denominator[present]))


def bootstrap_interval(
    df: pd.DataFrame,
    metric: str = "accuracy",
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """Percentile bootstrap interval for ``"accuracy"`` or ``"macro_f1"`` of a predictions frame.

    Resample the utterances with replacement ``n_resamples`` times, recompute the metric each time,
    and keep the middle ``level`` of the values: how much the score could move with another test
    set of the same size drawn the same way.
    """
    if metric not in ("accuracy", "macro_f1"):
        raise ValueError(f"metric must be 'accuracy' or 'macro_f1', not {metric!r}")
    if len(df) == 0:
        raise ValueError("bootstrap_interval: the predictions frame is empty")
    rng = np.random.default_rng(seed)
    codes = {label: i for i, label in enumerate(sorted(set(df["true"]) | set(df["predicted"])))}
    true = df["true"].map(codes).to_numpy()
    predicted = df["predicted"].map(codes).to_numpy()
    correct = df["correct"].to_numpy(dtype=float)
    values = np.empty(n_resamples)
    for i in range(n_resamples):
        idx = rng.integers(0, len(df), len(df))
        values[i] = (
            correct[idx].mean()
            if metric == "accuracy"
            else _macro_f1(true[idx], predicted[idx], len(codes))
        )
    point = (
        float(correct.mean()) if metric == "accuracy" else _macro_f1(true, predicted, len(codes))
    )
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return {
        "metric": metric,
        "value": point,
        "low": float(low),
        "high": float(high),
        "level": level,
        "n": int(len(df)),
    }


def paired_comparison(
    correct_a: Sequence[bool], correct_b: Sequence[bool], n_resamples: int = 2000, seed: int = 0
) -> dict:
    """Compare two classifiers on the SAME utterances (accuracy of a minus accuracy of b).

    Returns the counts that matter — utterances only ``a`` got right (``only_a``), only ``b``
    (``only_b``) — an exact McNemar test on them (two-sided binomial p-value: how often a split
    at least this lopsided would happen if both models were equally good), and a 95% paired
    bootstrap interval for the accuracy difference.
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(
            f"paired_comparison: need two equal, non-empty 1-D arrays, got {a.shape} and {b.shape}"
        )
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p_value = mcnemar_exact(only_a, only_b)
    rng = np.random.default_rng(seed)
    diff = a.astype(float) - b.astype(float)
    boots = np.array([diff[rng.integers(0, len(a), len(a))].mean() for _ in range(n_resamples)])
    low, high = np.quantile(boots, [0.025, 0.975])
    return {
        "n": int(len(a)),
        "accuracy_a": float(a.mean()),
        "accuracy_b": float(b.mean()),
        "difference": float(diff.mean()),
        "only_a": only_a,
        "only_b": only_b,
        "mcnemar_p": p_value,
        "low": float(low),
        "high": float(high),
    }


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (binomial, p = 1/2)."""
    from math import comb

    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(comb(n, i) for i in range(k + 1)) / 2**n
    return float(min(1.0, 2 * tail))
