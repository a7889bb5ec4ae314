"""Plots used by the notebooks. Each returns the matplotlib Figure it drew.

Figures are closed before they are returned, so a notebook shows each exactly once: as the
value of the cell (``plots.loss_curves(...)`` on the last line) or with ``display(fig)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def _finish(fig):
    fig.tight_layout()
    plt.close(fig)
    return fig


def label_distribution(frames: Mapping[str, pd.DataFrame], column: str = "label_text"):
    """The cookbook's three bar charts: label counts per split, one panel per split."""
    fig, axes = plt.subplots(len(frames), 1, figsize=(10, 4 * len(frames)))
    axes = np.atleast_1d(axes)
    order = sorted(next(iter(frames.values()))[column].unique())
    for ax, (name, df) in zip(axes, frames.items(), strict=True):
        counts = df[column].value_counts().reindex(order, fill_value=0)
        ax.bar(counts.index, counts.values, color="tab:blue")
        ax.set_title(f"Label distribution: {name} ({len(df):,} rows)")
        ax.set_ylabel("rows")
        ax.tick_params(axis="x", rotation=75)
    return _finish(fig)


def length_distribution(frames: Mapping[str, pd.DataFrame], column: str = "text"):
    """Histogram of utterance length in words, per split."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    longest = max(int(df[column].str.split().str.len().max()) for df in frames.values())
    bins = np.arange(0.5, longest + 1.5)
    for name, df in frames.items():
        ax.hist(df[column].str.split().str.len(), bins=bins, alpha=0.5, density=True, label=name)
    ax.set_xlabel("words per utterance")
    ax.set_ylabel("share of rows")
    ax.set_title("Utterance length")
    ax.legend()
    return _finish(fig)


def loss_curves(checkpoints: Sequence[Mapping]):
    """Train and validation loss from a job's checkpoints (given newest first, as the API does)."""
    points = sorted(checkpoints, key=lambda c: c["step_number"])
    steps = [c["step_number"] for c in points]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(steps, [c["metrics"].get("train_loss") for c in points], marker=".", label="train")
    valid = [(c["step_number"], c["metrics"].get("valid_loss")) for c in points]
    valid = [(s, v) for s, v in valid if v]
    if valid:
        ax.plot(*zip(*valid, strict=True), marker="o", label="validation")
    ax.set_xlabel("training step")
    ax.set_ylabel("loss")
    ax.set_title("Training and validation loss")
    ax.legend()
    return _finish(fig)


def confusion_matrix(matrix: np.ndarray, labels: Sequence[str], normalize: bool = True):
    """Heatmap of a confusion matrix (rows: true intent, columns: predicted)."""
    values = matrix / matrix.sum(axis=1, keepdims=True).clip(min=1) if normalize else matrix
    size = max(6, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(len(labels)), labels, rotation=75, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j]:
                color = "white" if values[i, j] > 0.5 * values.max() else "black"
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7, color=color)
    ax.set_xlabel("predicted intent")
    ax.set_ylabel("true intent")
    ax.set_title("Confusion matrix (colour: share of the true intent's rows)")
    fig.colorbar(image, ax=ax, fraction=0.046)
    return _finish(fig)


def confidence_histogram(confidence: Sequence[float], correct: Sequence[bool]):
    """Top-score distribution, split by whether the prediction was right."""
    confidence, correct = np.asarray(confidence), np.asarray(correct, dtype=bool)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    bins = np.linspace(0, 1, 21)
    ax.hist(confidence[correct], bins=bins, alpha=0.6, label=f"correct ({correct.sum()})")
    ax.hist(confidence[~correct], bins=bins, alpha=0.6, label=f"wrong ({(~correct).sum()})")
    ax.set_xlabel("confidence (top score)")
    ax.set_ylabel("test utterances")
    ax.set_yscale("log")
    ax.set_title("How sure is the classifier when it is right, and when it is wrong?")
    ax.legend()
    return _finish(fig)


def threshold_curve(table: pd.DataFrame, target_precision: float | None = None):
    """Accuracy of auto-routed traffic and its share, as the confidence threshold rises."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(table["threshold"], table["accuracy"], label="accuracy on routed utterances")
    ax.plot(table["threshold"], table["coverage"], label="share of traffic routed")
    if target_precision is not None:
        ax.axhline(target_precision, color="grey", linestyle="--", linewidth=1,
                   label=f"{target_precision:.0%} target")
    ax.set_xlabel("confidence threshold")
    ax.set_ylim(0, 1.02)
    ax.set_title("Route automatically above a threshold, send the rest to a person")
    ax.legend(loc="lower left")
    return _finish(fig)


def metric_bars(values: Mapping[str, float], title: str, xlabel: str = "accuracy"):
    """Horizontal bars comparing a few numbers (e.g. models or targets)."""
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(values) + 1.5))
    names = list(values)
    ax.barh(names, [values[n] for n in names], color="tab:blue")
    for i, n in enumerate(names):
        ax.text(values[n], i, f" {values[n]:.1%}", va="center")
    ax.set_xlim(0, 1.1)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.invert_yaxis()
    return _finish(fig)
