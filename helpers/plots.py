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
    """Share of each label per split, in one panel (grouped bars: one colour per split).

    Shares rather than counts, so splits of different sizes line up: stratified splits give
    bars of the same height within each group.
    """
    order = sorted(next(iter(frames.values()))[column].unique())
    fig, ax = plt.subplots(figsize=(11, 4.5))
    x = np.arange(len(order))
    width = 0.8 / len(frames)
    for k, (name, df) in enumerate(frames.items()):
        share = df[column].value_counts(normalize=True).reindex(order, fill_value=0)
        ax.bar(
            x + (k - (len(frames) - 1) / 2) * width,
            share.values,
            width,
            label=f"{name} ({len(df):,} rows)",
        )
    ax.set_xticks(x, order, rotation=75, ha="right")
    ax.set_xlabel(column)
    ax.set_ylabel("share of the split's rows")
    ax.set_title("Label distribution per split (stratified: same shares in every split)")
    ax.legend()
    return _finish(fig)


def length_distribution(
    frames: Mapping[str, pd.DataFrame], column: str = "text", mark: float | None = None
):
    """Utterance length in words per split, as outlined (step) histograms that stay readable."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    longest = max(int(df[column].str.split().str.len().max()) for df in frames.values())
    bins = np.arange(0.5, longest + 1.5)
    for name, df in frames.items():
        ax.hist(
            df[column].str.split().str.len(),
            bins=bins,
            density=True,
            histtype="step",
            linewidth=1.8,
            label=name,
        )
    if mark is not None:
        ax.axvline(
            mark,
            color="black",
            linestyle="--",
            linewidth=1,
            label=f"training median ({mark:g} words)",
        )
    ax.set_xlabel("words per utterance")
    ax.set_ylabel("share of the split's rows")
    ax.set_title("Utterance length per split")
    ax.legend()
    return _finish(fig)


def loss_curves(checkpoints: Sequence[Mapping], start: tuple[float, float] | None = None):
    """Train and validation loss from a job's checkpoints (given newest first, as the API does).

    Each checkpoint's ``train_loss`` is the mean training loss of the steps since the previous
    checkpoint (each step: one batch); validation loss is averaged over the whole validation
    file. ``start`` = (step, loss) marks a loss measured before training (e.g. of the
    warm-started head at step 0).
    """
    points = sorted(checkpoints, key=lambda c: c["step_number"])
    steps = [c["step_number"] for c in points]
    train = [c["metrics"].get("train_loss") for c in points]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.plot(
        steps,
        train,
        marker=".",
        color="tab:blue",
        label="training loss (mean over the steps since the previous checkpoint)",
    )
    valid = [(s, c["metrics"].get("valid_loss")) for s, c in zip(steps, points, strict=True)]
    valid = [(s, v) for s, v in valid if v is not None]
    if start is not None:
        valid = [start, *valid]
    if valid:
        ax.plot(
            *zip(*valid, strict=True),
            marker="o",
            color="tab:orange",
            label="validation loss (whole validation file)",
        )
    if start is not None:
        ax.plot(*start, marker="*", markersize=14, color="tab:orange", linestyle="none")
        ax.annotate(
            "step 0: warm-started head\n(before any training step)",
            start,
            xytext=(25, -45),
            textcoords="offset points",
            fontsize=8,
            arrowprops={"arrowstyle": "->"},
        )
    ax.set_xlabel("training step (one step = one batch)")
    ax.set_ylabel("loss (cross-entropy, lower is better)")
    ax.set_title("Training and validation loss")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return _finish(fig)


def confusion_matrix(
    matrix: np.ndarray,
    labels: Sequence[str],
    normalize: bool = True,
    hide_diagonal: bool = False,
):
    """Heatmap of a confusion matrix (rows: true intent, columns: predicted).

    ``hide_diagonal``: leave the correct answers uncoloured (their counts in grey) and give the
    mistakes the whole colour scale, in counts; otherwise a near-perfect classifier's few
    mistakes are almost white next to a dark diagonal.
    """
    matrix = np.asarray(matrix)
    if hide_diagonal:
        values = matrix.astype(float).copy()
        np.fill_diagonal(values, np.nan)
        top = max(1.0, float(np.nanmax(values)) if values.size > 1 else 1.0)
        vmin, vmax, cmap = 0.0, top, "Reds"
        title = "Mistakes only (colour: count; diagonal = correct answers, in grey)"
        bar = "mistakes"
    else:
        values = matrix / matrix.sum(axis=1, keepdims=True).clip(min=1) if normalize else matrix
        vmin, vmax, cmap = 0.0, (1.0 if normalize else None), "Blues"
        title = "Confusion matrix (colour: share of the true intent's rows)"
        bar = "share of the row" if normalize else "count"
    size = max(6, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(range(len(labels)), labels, rotation=75, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    high = np.nanmax(values) if np.isfinite(values).any() else 1.0
    for i in range(len(labels)):
        for j in range(len(labels)):
            if not matrix[i, j]:
                continue
            if hide_diagonal and i == j:
                color = "grey"
            else:
                color = "white" if values[i, j] > 0.5 * high else "black"
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7, color=color)
    ax.set_xlabel("predicted intent")
    ax.set_ylabel("true intent")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, label=bar)
    return _finish(fig)


def confidence_histogram(
    confidence: Sequence[float],
    correct: Sequence[bool],
    mark: float | None = None,
    what: str = "test utterances",
):
    """Top-score distribution, split by whether the prediction was right (log count axis)."""
    confidence, correct = np.asarray(confidence), np.asarray(correct, dtype=bool)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    bins = np.linspace(0, 1, 21)
    ax.hist(confidence[correct], bins=bins, alpha=0.35, color="tab:blue")
    ax.hist(
        confidence[correct],
        bins=bins,
        histtype="step",
        linewidth=1.8,
        color="tab:blue",
        label=f"correct ({correct.sum()})",
    )
    ax.hist(confidence[~correct], bins=bins, alpha=0.35, color="tab:red")
    ax.hist(
        confidence[~correct],
        bins=bins,
        histtype="step",
        linewidth=1.8,
        color="tab:red",
        label=f"wrong ({(~correct).sum()})",
    )
    if mark is not None:
        ax.axvline(
            mark, color="black", linestyle="--", linewidth=1, label=f"chosen threshold {mark:.3f}"
        )
    ax.set_xlabel("confidence (top score)")
    ax.set_ylabel(f"{what} (log scale)")
    ax.set_yscale("log")
    ax.set_title("How sure is the classifier when it is right, and when it is wrong?")
    ax.legend()
    return _finish(fig)


def threshold_curve(
    table: pd.DataFrame,
    target_precision: float | None = None,
    chosen: Mapping | None = None,
    other: pd.DataFrame | None = None,
    names: tuple[str, str] = ("validation", "test"),
    zoom: bool = True,
):
    """Accuracy of auto-routed traffic and its share, as the confidence threshold rises.

    ``table`` is drawn solid (the split the threshold is chosen on), ``other`` dashed (the split
    it is then applied to); ``chosen`` (``threshold``, ``accuracy``, ``coverage``) is marked.
    ``zoom`` limits the axes to where the lines change (both stay flat at low thresholds when
    the classifier is confident about almost everything).
    """
    fig, ax = plt.subplots(figsize=(8, 3.8))
    curves = [(table, names[0], "-", "accuracy on routed utterances", "share of traffic routed")]
    if other is not None:
        curves.append((other, names[1], ":", "accuracy on routed", "share routed"))
    for frame, name, style, accuracy_label, coverage_label in curves:
        for column, color, label in (
            ("accuracy", "tab:blue", accuracy_label),
            ("coverage", "tab:green", coverage_label),
        ):
            ax.plot(
                frame["threshold"],
                frame[column],
                color=color,
                linestyle=style,
                label=f"{label} ({name})",
            )
    if target_precision is not None:
        ax.axhline(
            target_precision,
            color="grey",
            linestyle="--",
            linewidth=1,
            label=f"{target_precision:.0%} target",
        )
    if chosen is not None and chosen.get("threshold") is not None:
        t = chosen["threshold"]
        ax.axvline(t, color="black", linewidth=1)
        ax.plot([t, t], [chosen["accuracy"], chosen["coverage"]], "ko")
        ax.annotate(
            f"chosen threshold {t:.3f}",
            (t, chosen["coverage"]),
            xytext=(8, -28),
            textcoords="offset points",
        )
    ax.set_xlabel("confidence threshold")
    ax.set_ylabel("share (0 to 1)")
    if zoom:  # where the lines change: from a little before coverage starts to fall
        frames = [table] + ([other] if other is not None else [])
        falling = [f.loc[f["coverage"] < 0.999, "threshold"] for f in frames]
        starts = [float(x.min()) for x in falling if len(x)]
        left = max(0.0, min(starts) - 0.05) if starts else 0.0
        shown = [f.loc[f["threshold"] >= left, ["accuracy", "coverage"]] for f in frames]
        marks = [target_precision] if target_precision is not None else []
        low = min([float(np.nanmin(x.to_numpy())) for x in shown] + marks)
        ax.set_xlim(left, 1.0)
        ax.set_ylim(max(0.0, low - 0.03), 1.01)
        ax.set_title("Route automatically above a threshold, send the rest to a person (zoomed in)")
    else:
        ax.set_ylim(0, 1.02)
    ax.set_title("Route automatically above a threshold, send the rest to a person")
    ax.legend(loc="lower left", fontsize=8)
    return _finish(fig)


def metric_bars(
    values: Mapping[str, float], title: str, xlabel: str = "accuracy", ylabel: str = "model"
):
    """Horizontal bars comparing a few numbers (e.g. models or targets)."""
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(values) + 1.5))
    names = list(values)
    ax.barh(names, [values[n] for n in names], color="tab:blue")
    for i, n in enumerate(names):
        ax.text(values[n], i, f" {values[n]:.1%}", va="center")
    ax.set_xlim(0, 1.1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.invert_yaxis()
    return _finish(fig)


def overlaid_histograms(
    samples: Mapping[str, Sequence[float]],
    xlabel: str,
    ylabel: str,
    title: str,
    bins: int | Sequence[float] = 30,
    mark_means: bool = True,
):
    """Several distributions on one axis, as outlined (step) histograms with a light fill."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (name, values) in enumerate(samples.items()):
        values = np.asarray(values, dtype=float)
        color = colors[k % len(colors)]
        weights = np.full(len(values), 1 / max(1, len(values)))  # bar height = share of values
        ax.hist(values, bins=bins, weights=weights, alpha=0.2, color=color)
        ax.hist(
            values,
            bins=bins,
            weights=weights,
            histtype="step",
            linewidth=1.8,
            color=color,
            label=f"{name} (mean {values.mean():.2f}, dashed)",
        )
        if mark_means:
            ax.axvline(values.mean(), color=color, linestyle="--", linewidth=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    return _finish(fig)


def learning_curve(
    df: pd.DataFrame,
    metric: str = "accuracy",
    x: str = "examples_per_intent",
    hue: str = "method",
    mark: Mapping[str, float] | None = None,
    title: str | None = None,
):
    """Mean of ``metric`` (line) and its spread over seeds (band: min to max) against ``x``.

    ``x == 0`` means "all training rows" and is drawn at the right end (at the mean number of
    rows per intent, column ``rows_per_intent``, when the frame has it). ``mark`` maps a
    ``hue`` value to an ``x`` value to circle on its line (e.g. where it reaches 95 % of its
    best score).
    """
    fig, ax = plt.subplots(figsize=(8, 4.5))
    data = df.copy()
    data[x] = data[x].astype(float)
    full = data[x] == 0
    at = None
    if full.any():
        at = float(
            round(data.loc[full, "rows_per_intent"].mean())
            if "rows_per_intent" in data
            else 2 * data.loc[~full, x].max()
        )
        data.loc[full, x] = at
    for name, group in data.groupby(hue, sort=False):
        stats = group.groupby(x)[metric].agg(["mean", "min", "max"]).sort_index()
        (line,) = ax.plot(stats.index, stats["mean"], marker="o", label=name)
        ax.fill_between(stats.index, stats["min"], stats["max"], alpha=0.2, color=line.get_color())
        point = None if not mark or name not in mark else (at if mark[name] == 0 else mark[name])
        if point is not None and point in stats.index:
            ax.plot(
                [point],
                [stats.loc[point, "mean"]],
                marker="o",
                markersize=14,
                markerfacecolor="none",
                color=line.get_color(),
            )
    ticks = sorted(data[x].unique())
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"all (~{t:g})" if t == at else f"{t:g}" for t in ticks])
    ax.set_xlabel("training examples per intent (log scale)")
    ax.set_ylabel(metric.replace("_", "-"))
    ax.set_title(
        title
        or f"Learning curve: {metric.replace('_', '-')} vs labelled examples "
        "(line: mean over seeds, band: min-max)"
    )
    ax.grid(alpha=0.3)
    ax.legend(title=hue)
    return _finish(fig)


def train_test_curves(
    df: pd.DataFrame,
    x: str = "examples_per_intent",
    hue: str = "method",
    title: str = "Training accuracy and test accuracy, per method",
):
    """One panel per ``hue`` value: accuracy on the utterances trained on (``train_accuracy``)
    and on the test set (``accuracy``), mean over seeds, against ``x`` (0 = all rows, drawn at
    ``rows_per_intent``). The gap between the two lines is what training data did not teach
    about new utterances (variance); a low training line means the model cannot even fit what
    it saw (bias)."""
    data = df.copy()
    data[x] = data[x].astype(float)
    full = data[x] == 0
    at = None
    if full.any():
        at = float(round(data.loc[full, "rows_per_intent"].mean()))
        data.loc[full, x] = at
    names = list(dict.fromkeys(data[hue]))
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.8), sharey=True)
    axes = np.atleast_1d(axes)
    ticks = sorted(data[x].unique())
    for ax, name in zip(axes, names, strict=True):
        group = data[data[hue] == name].groupby(x)[["train_accuracy", "accuracy"]].mean()
        ax.plot(group.index, group["train_accuracy"], marker="o", label="training utterances")
        ax.plot(group.index, group["accuracy"], marker="s", label="test utterances")
        ax.fill_between(
            group.index,
            group["accuracy"],
            group["train_accuracy"],
            alpha=0.15,
            color="grey",
            label="gap",
        )
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"all\n(~{t:g})" if t == at else f"{t:g}" for t in ticks])
        ax.set_title(str(name))
        ax.set_xlabel("training examples per intent (log scale)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (mean over seeds)")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(title)
    return _finish(fig)
