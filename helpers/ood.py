"""Out-of-scope ("none of the above") detection: scores, thresholds, calibration and plots.

Convention: every score is an *in-scope* score — higher means "more like the intents the
classifier knows". An utterance is sent to "none of the above" when its score is below a
threshold. Thresholds are chosen on validation data so that a given share of in-scope
utterances (``recall``, e.g. 95%) is kept; test data is used once, to report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers import data as data_mod

IN_SCOPE_RECALL = 0.95


# -- the out-of-scope pool ----------------------------------------------------------------------


def out_of_scope_pool(
    data_source: str, lang: str, kept: Sequence[str], in_scope_texts: Sequence[str] = ()
) -> pd.DataFrame:
    """Utterances (``text``, ``label_text``) of the intents the cookbook's filter dropped.

    Every split the source has (train, validation, test) is read, rows of ``lang`` whose intent
    is not in ``kept`` are kept, and texts that also occur among ``in_scope_texts`` (ignoring
    case and surrounding spaces) or twice in the pool are removed. None of these rows is ever
    used for training.
    """
    frames = []
    for split in data_mod.SPLITS:
        try:
            raw, _ = data_mod.load_raw(data_source, split, lang)  # the hub: that config only
        except data_mod.DataSourceError:
            continue  # e.g. a folder without test.jsonl
        if "lang" in raw.columns:
            raw = raw[raw["lang"] == lang]
        frames.append(raw[~raw["label_text"].isin(set(kept))][data_mod.COLUMNS])
    if not frames:
        raise data_mod.DataSourceError(f"{data_source}: no split could be read")
    pool = pd.concat(frames, ignore_index=True)
    key = pool["text"].str.strip().str.lower()
    seen = {str(t).strip().lower() for t in in_scope_texts}
    pool = pool[~key.isin(seen) & ~key.duplicated()]
    return pool.sort_values(["label_text", "text"], kind="stable").reset_index(drop=True)


def split_pool(pool: pd.DataFrame, seed: int = 42, validation_share: float = 0.5):
    """``(validation, test)`` halves of the pool, stratified by intent (deterministic)."""
    from sklearn.model_selection import train_test_split

    counts = pool["label_text"].value_counts()
    stratify = pool["label_text"] if counts.min() >= 2 else None
    validation, test = train_test_split(
        pool, train_size=validation_share, random_state=seed, stratify=stratify
    )
    return validation.reset_index(drop=True), test.reset_index(drop=True)


# -- talking to the service ----------------------------------------------------------------------


def embed_all(
    client,
    model: str,
    texts: Sequence[str],
    batch_size: int = 256,
    retries: int = 5,
    backoff_seconds: float = 1.0,
) -> np.ndarray:
    """``client.embeddings.create`` over all ``texts`` (retrying 429/5xx): an (n, dim) array in
    the order of ``texts``; sent in batches of similar length, as ``classify_all`` does."""
    from helpers.evaluation import with_retries
    from helpers.text_batches import length_sorted_batches

    texts = [str(t) for t in texts]
    out: np.ndarray | None = None
    for idx in length_sorted_batches(texts, batch_size):
        batch = [texts[i] for i in idx]
        response = with_retries(
            lambda batch=batch: client.embeddings.create(model=model, inputs=batch),
            retries,
            backoff_seconds,
        )
        rows = [d.embedding for d in sorted(response.data, key=lambda d: d.index)]
        if out is None:
            out = np.empty((len(texts), len(rows[0])), dtype=np.float64)
        out[idx] = np.asarray(rows, dtype=np.float64)
    return out if out is not None else np.empty((0, 0), dtype=np.float64)


def score_matrix(scores: Sequence[dict], labels: Sequence[str], target: str = "intent"):
    """Classification results (``classify_all``) as an (n, n_labels) probability matrix."""
    return np.array([[s[target][label] for label in labels] for s in scores], dtype=np.float64)


# -- scores from class probabilities ------------------------------------------------------------


def max_softmax(probs: np.ndarray) -> np.ndarray:
    """The highest class probability of each row."""
    return np.asarray(probs).max(axis=1)


def margin(probs: np.ndarray) -> np.ndarray:
    """The gap between the two highest class probabilities of each row."""
    top2 = np.sort(np.asarray(probs), axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def neg_entropy(probs: np.ndarray, floor: float = 1e-12) -> np.ndarray:
    """Minus the entropy of each row's probabilities: 0 for one certain intent, ``-log(n)`` when
    all ``n`` intents are equally likely. Unlike the top probability it sees the whole row."""
    p = np.clip(np.asarray(probs, dtype=np.float64), floor, None)
    return (p * np.log(p)).sum(axis=1)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def logits_from_probs(probs: np.ndarray, floor: float = 1e-12) -> np.ndarray:
    """Log-probabilities: logits up to a per-row constant, which softmax ignores."""
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), floor, None))


def fit_temperature(
    logits: np.ndarray, labels: Sequence[int], bounds: tuple[float, float] = (0.05, 20.0)
) -> float:
    """The temperature T minimising the negative log-likelihood of ``softmax(logits / T)``."""
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels)
    if len(z) == 0 or len(z) != len(y):
        raise ValueError("fit_temperature needs as many labels as rows of logits (at least one)")

    def nll(log_t: float) -> float:
        p = softmax(z, float(np.exp(log_t)))
        return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-300, None)).mean())

    res = minimize_scalar(
        nll, bounds=tuple(np.log(bounds)), method="bounded", options={"xatol": 1e-6}
    )
    return float(np.exp(res.x))


# -- Mahalanobis distance -----------------------------------------------------------------------


@dataclass
class Mahalanobis:
    """Class means and one shared covariance, fitted on training embeddings.

    ``score`` is minus the squared Mahalanobis distance to the nearest class mean (Lee et al.
    2018; Podolskiy et al. 2021): far from every intent → low score → out of scope.
    """

    classes: list[str]
    means: np.ndarray  # (n_classes, dim)
    precision: np.ndarray  # (dim, dim): inverse of the shared covariance

    @classmethod
    def fit(cls, x: np.ndarray, labels: Sequence[str], ridge: float = 1e-6) -> Mahalanobis:
        x = np.asarray(x, dtype=np.float64)
        labels = np.asarray(labels)
        if x.ndim != 2 or len(x) != len(labels):
            raise ValueError(
                f"x must be (n, dim) with one label per row; got {x.shape} and {len(labels)} labels"
            )
        classes = sorted(set(labels.tolist()))
        means = np.stack([x[labels == c].mean(axis=0) for c in classes])
        centred = x - means[np.searchsorted(classes, labels)]
        cov = centred.T @ centred / len(x)
        cov += ridge * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
        return cls(classes, means, np.linalg.pinv(cov, hermitian=True))

    def distances(self, x: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance of each row to each class mean: (n, n_classes)."""
        x = np.asarray(x, dtype=np.float64)
        xp = x @ self.precision
        mp = self.means @ self.precision
        return (xp * x).sum(1)[:, None] - 2 * xp @ self.means.T + (mp * self.means).sum(1)[None, :]

    def score(self, x: np.ndarray) -> np.ndarray:
        return -self.distances(x).min(axis=1)

    def nearest(self, x: np.ndarray) -> list[str]:
        return [self.classes[i] for i in self.distances(x).argmin(axis=1)]


@dataclass
class NearestNeighbour:
    """Cosine similarity to the closest training embeddings (Sun et al. 2022).

    ``score`` is the mean cosine similarity of a row to its ``k`` most similar training rows:
    an utterance unlike every training example → low score → out of scope. Unlike
    :class:`Mahalanobis` it assumes no shape for the intents' clouds of points.
    """

    train: np.ndarray  # (n, dim), rows scaled to length 1
    k: int = 1

    @classmethod
    def fit(cls, x: np.ndarray, k: int = 1) -> NearestNeighbour:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or len(x) < k or k < 1:
            raise ValueError(f"x must be (n, dim) with n >= k >= 1; got {x.shape} and k={k}")
        return cls(_unit(x), k)

    def score(self, x: np.ndarray, batch: int = 2048) -> np.ndarray:
        x = _unit(np.asarray(x, dtype=np.float64))
        out = []
        for start in range(0, len(x), batch):  # bounded memory: (batch, n) similarities
            sim = x[start : start + batch] @ self.train.T
            top = np.partition(sim, sim.shape[1] - self.k, axis=1)[:, -self.k :]
            out.append(top.mean(axis=1))
        return np.concatenate(out) if out else np.zeros(0)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)


@dataclass
class Combined:
    """A weighted sum of scores, each first standardised with the mean and standard deviation
    of its in-scope *validation* scores (a z-score), so scores on different scales can be added.
    """

    weights: dict[str, float]
    mean: dict[str, float]
    std: dict[str, float]

    @classmethod
    def fit(cls, valid_in: dict[str, np.ndarray], weights: dict[str, float]) -> Combined:
        if set(valid_in) != set(weights):
            raise ValueError(f"scores {sorted(valid_in)} and weights {sorted(weights)} differ")
        mean = {k: float(np.mean(v)) for k, v in valid_in.items()}
        std = {k: float(np.std(v)) or 1.0 for k, v in valid_in.items()}
        return cls(dict(weights), mean, std)

    @classmethod
    def fit_best(
        cls,
        valid_in: dict[str, np.ndarray],
        valid_oos: dict[str, np.ndarray],
        grid: Sequence[float] = (0.3, 0.5, 0.7),
    ) -> Combined:
        """Two scores; the weight of the first (the second gets ``1 - w``) chosen from ``grid``
        by validation AUROC."""
        if len(valid_in) != 2:
            raise ValueError(f"fit_best combines two scores, got {sorted(valid_in)}")
        first, second = valid_in
        fits = [cls.fit(valid_in, {first: w, second: 1 - w}) for w in grid]
        return max(fits, key=lambda c: auroc(c.score(valid_in), c.score(valid_oos)))

    def score(self, scores: dict[str, np.ndarray]) -> np.ndarray:
        total = np.zeros(len(np.asarray(scores[next(iter(self.weights))])))
        for k, w in self.weights.items():
            total += w * (np.asarray(scores[k], dtype=np.float64) - self.mean[k]) / self.std[k]
        return total


# -- thresholds and metrics ---------------------------------------------------------------------


def auroc(in_scores: Sequence[float], oos_scores: Sequence[float]) -> float:
    """Area under the ROC curve for telling out-of-scope from in-scope (1 = perfect, 0.5 = chance).

    The probability that a random out-of-scope utterance scores lower than a random in-scope
    one (ties count half).
    """
    from sklearn.metrics import roc_auc_score

    s_in, s_oos = np.asarray(in_scores), np.asarray(oos_scores)
    if len(s_in) == 0 or len(s_oos) == 0:
        raise ValueError("auroc needs at least one in-scope and one out-of-scope score")
    y = np.r_[np.zeros(len(s_in)), np.ones(len(s_oos))]
    return float(roc_auc_score(y, -np.r_[s_in, s_oos]))


def auroc_difference(
    in_a: Sequence[float],
    oos_a: Sequence[float],
    in_b: Sequence[float],
    oos_b: Sequence[float],
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """AUROC of score ``a`` minus AUROC of score ``b`` on the SAME utterances (paired).

    The in-scope and the out-of-scope utterances are resampled with replacement, the same
    draws for both scores, ``n_resamples`` times: a 95% interval for the difference, and a
    two-sided bootstrap p-value (twice the share of draws on the other side of 0, at most 1).
    """
    a_in, a_oos, b_in, b_oos = (np.asarray(x, dtype=np.float64) for x in (in_a, oos_a, in_b, oos_b))
    if a_in.shape != b_in.shape or a_oos.shape != b_oos.shape:
        raise ValueError(
            "auroc_difference: both scores must be for the same utterances "
            f"(in-scope {a_in.shape} vs {b_in.shape}, out-of-scope {a_oos.shape} vs {b_oos.shape})"
        )
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_resamples)
    for r in range(n_resamples):
        i = rng.integers(0, len(a_in), len(a_in))
        o = rng.integers(0, len(a_oos), len(a_oos))
        diffs[r] = auroc(a_in[i], a_oos[o]) - auroc(b_in[i], b_oos[o])
    point = auroc(a_in, a_oos) - auroc(b_in, b_oos)
    low, high = np.quantile(diffs, [0.025, 0.975])
    side = (diffs <= 0).mean() if point > 0 else (diffs >= 0).mean()
    return {
        "auroc_a": auroc(a_in, a_oos),
        "auroc_b": auroc(b_in, b_oos),
        "difference": float(point),
        "low": float(low),
        "high": float(high),
        "p_value": float(min(1.0, 2 * side)),
    }


def threshold_for_recall(in_scores: Sequence[float], recall: float = IN_SCOPE_RECALL) -> float:
    """The highest threshold that keeps at least ``recall`` of the in-scope scores (``>= t``)."""
    s = np.sort(np.asarray(in_scores, dtype=np.float64))
    if len(s) == 0 or not 0 < recall <= 1:
        raise ValueError("threshold_for_recall needs scores and 0 < recall <= 1")
    k = len(s) - int(np.ceil(recall * len(s) - 1e-9))  # how many may fall below
    return float(s[k])


def at_threshold(threshold: float, in_scores, in_correct, oos_scores) -> dict:
    """What routing with ``score >= threshold`` → intent, else "none of the above" gives.

    ``oos_recall``: share of out-of-scope utterances sent to "none of the above";
    ``in_scope_recall``: share of in-scope utterances kept; ``in_scope_accuracy``: share of
    in-scope utterances kept *and* given the right intent (a rejection counts as an error).
    """
    s_in, s_oos = np.asarray(in_scores), np.asarray(oos_scores)
    kept = s_in >= threshold
    return {
        "threshold": float(threshold),
        "oos_recall": float((s_oos < threshold).mean()),
        "in_scope_recall": float(kept.mean()),
        "in_scope_accuracy": float((kept & np.asarray(in_correct, dtype=bool)).mean()),
    }


def evaluate(
    name: str, valid_in, valid_oos, test_in, test_oos, test_correct, recall: float = IN_SCOPE_RECALL
) -> dict:
    """One method's row: AUROC on validation and test, then the test metrics at the threshold
    chosen on the in-scope validation scores for ``recall`` in-scope recall."""
    t = threshold_for_recall(valid_in, recall)
    return {
        "method": name,
        "valid_auroc": auroc(valid_in, valid_oos),
        "auroc": auroc(test_in, test_oos),
        **at_threshold(t, test_in, test_correct, test_oos),
    }


def expected_cost(
    row: dict, cost_false_reject: float, cost_false_accept: float, oos_share: float
) -> float:
    """Average cost per utterance of routing as ``row`` (one :func:`at_threshold` result)
    describes, in traffic where a share ``oos_share`` of the utterances is out of scope.

    Rejecting an in-scope utterance costs ``cost_false_reject`` (the user rephrases); acting on
    a wrong intent costs ``cost_false_accept`` — an out-of-scope utterance accepted, or an
    in-scope one kept with the wrong intent. Right answers and right rejections cost nothing.
    """
    if cost_false_reject < 0 or cost_false_accept < 0 or not 0 <= oos_share < 1:
        raise ValueError("costs must be >= 0 and 0 <= oos_share < 1")
    rejected_in = 1 - row["in_scope_recall"]
    wrong_in = row["in_scope_recall"] - row["in_scope_accuracy"]
    accepted_oos = 1 - row["oos_recall"]
    return float(
        (1 - oos_share) * (cost_false_reject * rejected_in + cost_false_accept * wrong_in)
        + oos_share * cost_false_accept * accepted_oos
    )


def threshold_by_cost(
    in_scores,
    in_correct,
    oos_scores,
    cost_false_reject: float,
    cost_false_accept: float,
    oos_share: float,
) -> dict:
    """The threshold with the lowest :func:`expected_cost` on these scores (use validation
    data): every observed score is tried, and minus infinity (reject nothing); of equal costs
    the lowest threshold wins, so nothing is rejected without a reason. Returns
    :func:`at_threshold`'s row with ``cost`` added."""
    candidates = np.unique(np.r_[np.asarray(in_scores, float), np.asarray(oos_scores, float)])
    best: dict | None = None
    for t in (-np.inf, *candidates):
        row = at_threshold(t, in_scores, in_correct, oos_scores)
        row["cost"] = expected_cost(row, cost_false_reject, cost_false_accept, oos_share)
        if best is None or row["cost"] < best["cost"] - 1e-12:
            best = row
    assert best is not None
    return best


def cost_difference(
    a: dict,
    b: dict,
    in_correct,
    cost_false_reject: float,
    cost_false_accept: float,
    oos_share: float,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict:
    """Expected cost of method ``a`` minus method ``b``, each at its own threshold, on the same
    utterances, with a 95% paired bootstrap interval. ``a`` and ``b`` are
    ``{"in": in-scope scores, "oos": out-of-scope scores, "threshold": t}``; in-scope and
    out-of-scope utterances are resampled separately, the same draw for both methods."""
    correct = np.asarray(in_correct, dtype=bool)

    def per_utterance(m: dict) -> tuple[np.ndarray, np.ndarray]:
        kept = np.asarray(m["in"]) >= m["threshold"]
        in_cost = np.where(kept, np.where(correct, 0.0, cost_false_accept), cost_false_reject)
        oos_cost = np.where(np.asarray(m["oos"]) >= m["threshold"], cost_false_accept, 0.0)
        return in_cost, oos_cost

    (in_a, oos_a), (in_b, oos_b) = per_utterance(a), per_utterance(b)
    d_in, d_oos = in_a - in_b, oos_a - oos_b
    rng = np.random.default_rng(seed)
    boot_in = d_in[rng.integers(0, len(d_in), (n_boot, len(d_in)))].mean(axis=1)
    boot_oos = d_oos[rng.integers(0, len(d_oos), (n_boot, len(d_oos)))].mean(axis=1)
    boots = (1 - oos_share) * boot_in + oos_share * boot_oos
    low, high = np.quantile(boots, [0.025, 0.975])
    return {
        "difference": float((1 - oos_share) * d_in.mean() + oos_share * d_oos.mean()),
        "low": float(low),
        "high": float(high),
    }


def sweep(in_scores, in_correct, oos_scores, n: int = 200) -> pd.DataFrame:
    """OOS recall, in-scope recall and accuracy for ``n`` thresholds across the score range."""
    s = np.r_[np.asarray(in_scores), np.asarray(oos_scores)]
    grid = np.quantile(s, np.linspace(0, 1, n))
    return pd.DataFrame([at_threshold(t, in_scores, in_correct, oos_scores) for t in grid])


# -- calibration --------------------------------------------------------------------------------


def reliability(
    confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 10
) -> pd.DataFrame:
    """Per confidence bin: how many predictions, their mean confidence and their accuracy."""
    c = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0, 1, n_bins + 1)
    bins = np.clip(np.digitize(c, edges[1:-1], right=True), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        m = bins == b
        rows.append(
            {
                "low": edges[b],
                "high": edges[b + 1],
                "count": int(m.sum()),
                "confidence": float(c[m].mean()) if m.any() else np.nan,
                "accuracy": float(ok[m].mean()) if m.any() else np.nan,
            }
        )
    return pd.DataFrame(rows)


def expected_calibration_error(confidence, correct, n_bins: int = 10) -> float:
    """ECE: the count-weighted mean gap between confidence and accuracy over equal-width bins."""
    table = reliability(confidence, correct, n_bins)
    used = table[table["count"] > 0]
    if used.empty:
        raise ValueError("expected_calibration_error needs at least one prediction")
    gaps = (used["confidence"] - used["accuracy"]).abs()
    return float((gaps * used["count"]).sum() / used["count"].sum())


# -- plots --------------------------------------------------------------------------------------


def plot_threshold(table: pd.DataFrame, chosen: dict, title: str, ax=None):
    """OOS recall and in-scope accuracy against the threshold; the chosen threshold marked."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        plt.close(fig)  # shown once, as the cell's value (``.figure``)
    lines = {
        "oos_recall": ax.plot(table["threshold"], table["oos_recall"], label="out-of-scope recall")[
            0
        ],
        "in_scope_accuracy": ax.plot(
            table["threshold"], table["in_scope_accuracy"], label="in-scope accuracy"
        )[0],
    }
    ax.plot(table["threshold"], table["in_scope_recall"], ":", label="in-scope recall (kept)")
    t = chosen["threshold"]
    ax.axvline(t, color="grey", ls="--", lw=1, label="threshold chosen on validation")
    # each value sits next to its own marker, in its line's colour; the higher value above
    high = max(("oos_recall", "in_scope_accuracy"), key=lambda k: chosen[k])
    for key, marker in (("oos_recall", "o"), ("in_scope_accuracy", "s")):
        color = lines[key].get_color()
        ax.plot([t], [chosen[key]], marker, color=color, markeredgecolor="black", zorder=3)
        ax.annotate(
            f"{chosen[key]:.1%}",
            (t, chosen[key]),
            textcoords="offset points",
            xytext=(7, 5 if key == high else -13),
            fontsize=8,
            color=color,
            fontweight="bold",
        )
    ax.set(
        title=title,
        xlabel="threshold on the score",
        ylabel="share of utterances",
        ylim=(-0.02, 1.05),
    )
    ax.legend(fontsize=8, loc="lower left")
    return ax


def plot_reliability(tables: dict[str, pd.DataFrame], eces: dict[str, float], title: str):
    """Reliability diagram: accuracy against confidence per bin, one line per variant; the small
    numbers are the utterances in each bin (a bin of 3 says little)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfectly calibrated")
    for name, table in tables.items():
        used = table[table["count"] > 0]
        (line,) = ax.plot(
            used["confidence"], used["accuracy"], "o-", label=f"{name} (ECE {eces[name]:.3f})"
        )
        for x, y, n in zip(used["confidence"], used["accuracy"], used["count"], strict=True):
            ax.annotate(
                f"{int(n)}",
                (x, y),
                textcoords="offset points",
                xytext=(-4, 6),
                fontsize=6,
                color=line.get_color(),
            )
    ax.set(
        title=title,
        xlabel="confidence (max probability)",
        ylabel="accuracy in the bin",
        xlim=(0, 1.02),
        ylim=(0, 1.02),
    )
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    plt.close(fig)  # shown once, as the cell's value (like helpers.plots)
    return fig


def plot_thresholds(tables: dict[str, pd.DataFrame], chosen: dict[str, dict], title: str):
    """One :func:`plot_threshold` panel per method, in a grid; returns the (closed) figure."""
    import matplotlib.pyplot as plt

    n = len(tables)
    cols = 2 if n > 1 else 1
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3.8 * rows), squeeze=False)
    for ax, name in zip(axes.flat, tables, strict=False):
        plot_threshold(tables[name], chosen[name], name, ax=ax)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)
    return fig
