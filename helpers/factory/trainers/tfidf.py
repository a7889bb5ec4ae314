"""``tfidf-logreg``: TF-IDF features and one regularised linear head per target.

Features: word 1–2-grams plus ``char_wb`` 2–5-grams, sublinear tf, each block L2-normalised.
Heads: a softmax (single-label target) or one-vs-rest sigmoids (multi-label target) per target,
all fitted jointly by full-batch L-BFGS on ``mean loss + ||W||² / (2·C·n)`` (scikit-learn's
logistic-regression objective, ``C = 10``).

Hyperparameter mapping: a *training step* is one L-BFGS iteration over the whole training set
(so ``batch_size`` is 0, "full batch", and one step is one epoch); ``training_steps`` is the
iteration cap (L-BFGS may converge earlier). ``learning_rate``, ``weight_decay`` and
``warmup_fraction`` do not apply to L-BFGS and are ignored. Validation loss and accuracy are
reported every ``eval_every`` steps and on the final step.

The model directory holds ``config.json``, vocabularies as JSON and tensors as ``.npy`` read
with ``allow_pickle=False``: loading it never executes code.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.preprocessing import normalize

from ...formatting import iter_examples
from .base import (
    MULTI_LABEL_THRESHOLD,
    CancelCheck,
    DataCheck,
    DataRefused,
    Example,
    ProgressCallback,
    StepReport,
    TargetSpec,
    TrainConfig,
    never_cancelled,
)

FORMAT = "tfidf-logreg/1"
BLOCKS = {
    "word": {"analyzer": "word", "ngram_range": (1, 2), "min_df": 1},
    "char": {"analyzer": "char_wb", "ngram_range": (2, 5), "min_df": 2},
}
_WORD = re.compile(r"(?u)\b\w\w+\b")  # the word block's token pattern
BYTES_PER_WEIGHT = 4 * 20  # float32 weights, gradient and 7 L-BFGS pairs, with slack
MAX_CHECKED_BIGRAMS = 200_000  # the shared-n-gram check gives up (accepts) beyond this


class _Features:
    """The fitted TF-IDF blocks: vocabularies and idf weights, rebuilt without pickle."""

    def __init__(self, vocabularies: dict[str, list[str]], idfs: dict[str, np.ndarray]):
        self.idfs = idfs
        self.vocabularies = vocabularies
        self._counters = {
            name: CountVectorizer(
                analyzer=BLOCKS[name]["analyzer"],
                ngram_range=BLOCKS[name]["ngram_range"],
                vocabulary={term: i for i, term in enumerate(vocabularies[name])},
                dtype=np.float32,
            )
            for name in BLOCKS
        }

    @classmethod
    def fit(cls, texts: Sequence[str]) -> tuple[_Features, sp.csr_matrix]:
        blocks, vocabularies, idfs = [], {}, {}
        for name, params in BLOCKS.items():
            # min_df counts documents: tiny data sets keep every n-gram
            min_df = params["min_df"] if len(texts) >= 50 else 1
            vectorizer = TfidfVectorizer(
                analyzer=params["analyzer"],
                ngram_range=params["ngram_range"],
                min_df=min_df,
                sublinear_tf=True,
                dtype=np.float32,
            )
            blocks.append(vectorizer.fit_transform(texts))
            terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get)
            vocabularies[name] = terms
            idfs[name] = vectorizer.idf_.astype(np.float32)
        return cls(vocabularies, idfs), sp.hstack(blocks, format="csr", dtype=np.float32)

    @property
    def n_features(self) -> int:
        return sum(len(v) for v in self.vocabularies.values())

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        blocks = []
        for name, counter in self._counters.items():
            counts = counter.transform(texts).tocsr()
            counts.data = 1.0 + np.log(counts.data)  # sublinear tf
            blocks.append(normalize(counts.multiply(self.idfs[name]).tocsr()))
        return sp.hstack(blocks, format="csr", dtype=np.float32)

    def save(self, out_dir: Path) -> None:
        for name in BLOCKS:
            (out_dir / f"vocab_{name}.json").write_text(
                json.dumps(self.vocabularies[name], ensure_ascii=False), encoding="utf-8"
            )
            np.save(out_dir / f"idf_{name}.npy", self.idfs[name], allow_pickle=False)

    @classmethod
    def load(cls, model_dir: Path) -> _Features:
        vocabularies, idfs = {}, {}
        for name in BLOCKS:
            vocabularies[name] = json.loads(
                (model_dir / f"vocab_{name}.json").read_text(encoding="utf-8")
            )
            idfs[name] = np.load(model_dir / f"idf_{name}.npy", allow_pickle=False)
        return cls(vocabularies, idfs)


def _target_matrix(examples: Sequence[Example], target: TargetSpec) -> np.ndarray:
    """One-hot (single-label) or multi-hot (multi-label) float32 matrix, one row per example."""
    index = {label: i for i, label in enumerate(target.labels)}
    y = np.zeros((len(examples), len(target.labels)), dtype=np.float32)
    for row, example in enumerate(examples):
        value = example.labels[target.name]
        for label in value if isinstance(value, list) else [value]:
            if label in index:
                y[row, index[label]] = 1.0
    return y


def _scores(logits: np.ndarray, multi_label: bool) -> np.ndarray:
    if multi_label:
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _loss_and_grad(logits: np.ndarray, y: np.ndarray, multi_label: bool):
    """Mean loss over examples and its gradient with respect to the logits."""
    n = logits.shape[0]
    if multi_label:  # binary cross-entropy summed over labels
        loss = np.logaddexp(0.0, logits) - y * logits
        return float(loss.sum() / n), (_scores(logits, True) - y) / n
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_p = shifted - log_z
    return float(-(y * log_p).sum() / n), (np.exp(log_p) - y) / n


def _accuracy(scores: np.ndarray, y: np.ndarray, multi_label: bool) -> float:
    if multi_label:  # exact match of the predicted label set
        predicted = scores >= MULTI_LABEL_THRESHOLD
        return float((predicted == (y > 0.5)).all(axis=1).mean())
    return float((scores.argmax(axis=1) == y.argmax(axis=1)).mean())


class _Heads:
    """Flat parameter vector <-> one (W, b) per target."""

    def __init__(self, n_features: int, targets: Sequence[TargetSpec]):
        self.targets = list(targets)
        self.shapes = [(n_features, len(t.labels)) for t in targets]
        self.size = sum(f * k + k for f, k in self.shapes)

    def split(self, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        out, start = [], 0
        for f, k in self.shapes:
            w = theta[start : start + f * k].reshape(f, k)
            b = theta[start + f * k : start + f * k + k]
            out.append((w, b))
            start += f * k + k
        return out


def _lbfgs(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x: np.ndarray,
    max_iter: int,
    callback: Callable[[int, np.ndarray, float, bool], None],
    history: int = 7,
    tol: float = 1e-9,
) -> tuple[np.ndarray, float]:
    """Minimise ``fun`` (value, gradient) with L-BFGS and a backtracking Armijo line search.

    ``callback(step, x, value, done)`` runs after every iteration (``done`` on the last one,
    whether it is the last because of ``max_iter``, convergence or a failed line search); it may
    raise to stop.
    """
    f, g = fun(x)
    pairs: deque[tuple[np.ndarray, np.ndarray, float]] = deque(maxlen=history)
    for step in range(1, max_iter + 1):
        q = -g
        alphas = []
        for s, y, rho in reversed(pairs):
            alpha = rho * float(s @ q)
            q -= alpha * y
            alphas.append(alpha)
        if pairs:
            s, y, _ = pairs[-1]
            q *= float(s @ y) / float(y @ y)
        else:
            q /= max(float(np.abs(g).max()), 1e-12)
        for (s, y, rho), alpha in zip(pairs, reversed(alphas), strict=True):
            q += (alpha - rho * float(y @ q)) * s
        slope = float(g @ q)
        if slope >= 0:  # not a descent direction: restart from the gradient
            pairs.clear()
            q = -g / max(float(np.abs(g).max()), 1e-12)
            slope = float(g @ q)
        t = 1.0
        for _ in range(30):
            x_new = x + t * q
            f_new, g_new = fun(x_new)
            if f_new <= f + 1e-4 * t * slope:
                break
            t *= 0.5
        else:
            callback(step, x, f, True)
            return x, f
        s, y = x_new - x, g_new - g
        sy = float(s @ y)
        if sy > 1e-12:
            pairs.append((s, y, 1.0 / sy))
        converged = f - f_new <= tol * max(abs(f_new), 1.0)
        x, f, g = x_new, f_new, g_new
        callback(step, x, f, converged or step == max_iter)
        if converged:
            break
    return x, f


class TfidfLogRegTrainer:
    base_model = "tfidf-logreg"
    description = (
        "TF-IDF word 1-2-grams + char 2-5-grams with logistic-regression heads (L-BFGS). "
        "Trains in seconds on CPU; a step is one full-batch iteration."
    )
    batch_size = 0  # full batch: every step sees every training example
    max_context_length = 8192
    device = "cpu"
    # 40 L-BFGS iterations converge on Banking77/CLINC150 (more do not help); the rate, weight
    # decay and warm-up do not apply to L-BFGS (the L2 strength is C)
    defaults = TrainConfig(
        training_steps=40, learning_rate=1.0, weight_decay=0.0, warmup_fraction=0.0
    )
    C = 10.0
    eval_every = 10

    def availability(self) -> tuple[bool, str]:
        return True, ""

    def expected_seconds(self, n_train: int, config: TrainConfig) -> int:
        return max(1, math.ceil(1.0 + n_train * config.training_steps * 7e-6))

    def check_data(
        self,
        files: Sequence[tuple[str, Path]],
        sample: Sequence[str],
        n_texts: int,
        n_labels: int,
    ) -> DataCheck:
        """Lines with no word (warned; refused when no line has one), data whose character
        block would be empty (refused) and the memory estimate: features x labels x bytes per
        weight, the features counted on the sample."""
        warnings = _wordless_lines(files)
        _refuse_unshared_characters(files, n_texts)
        return DataCheck(warnings, *_memory_estimate(sample, n_texts, n_labels))

    def train(
        self,
        train: Sequence[Example],
        valid: Sequence[Example] | None,
        targets: Sequence[TargetSpec],
        config: TrainConfig,
        out_dir: Path,
        on_step: ProgressCallback,
        check_cancelled: CancelCheck = never_cancelled,
    ) -> None:
        check_cancelled()
        features, x = _Features.fit([e.text for e in train])
        check_cancelled()
        xt = x.T.tocsr()
        ys = [_target_matrix(train, t) for t in targets]
        heads = _Heads(x.shape[1], targets)
        n = x.shape[0]
        l2 = 1.0 / (self.C * n)
        x_valid = features.transform([e.text for e in valid]) if valid else None
        ys_valid = [_target_matrix(valid, t) for t in targets] if valid else None

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            grad = np.empty_like(theta)
            total = 0.0
            start = 0
            for (w, b), y, t in zip(heads.split(theta), ys, targets, strict=True):
                loss, g_logits = _loss_and_grad(x @ w + b, y, t.multi_label)
                g_w = xt @ g_logits + l2 * w
                total += loss + 0.5 * l2 * float((w * w).sum())
                size = w.size
                grad[start : start + size] = g_w.ravel()
                grad[start + size : start + size + b.size] = g_logits.sum(axis=0)
                start += size + b.size
            return total, grad

        def evaluate(theta: np.ndarray) -> tuple[float, float]:
            assert ys_valid is not None  # only called when there is validation data
            losses, accuracies = [], []
            for (w, b), y, t in zip(heads.split(theta), ys_valid, targets, strict=True):
                logits = x_valid @ w + b
                losses.append(_loss_and_grad(logits, y, t.multi_label)[0])
                accuracies.append(_accuracy(_scores(logits, t.multi_label), y, t.multi_label))
            return float(np.mean(losses)), float(np.mean(accuracies))

        total_steps = config.training_steps

        def callback(step: int, theta: np.ndarray, loss: float, done: bool) -> None:
            report = StepReport(step, total_steps, loss)
            if valid and (done or step % self.eval_every == 0):
                report.valid_loss, report.valid_accuracy = evaluate(theta)
            on_step(report)

        theta, _ = _lbfgs(objective, np.zeros(heads.size, np.float32), total_steps, callback)

        features.save(out_dir)
        for i, (w, b) in enumerate(heads.split(theta)):
            np.save(out_dir / f"head_{i}_W.npy", np.ascontiguousarray(w), allow_pickle=False)
            np.save(out_dir / f"head_{i}_b.npy", np.ascontiguousarray(b), allow_pickle=False)
        config_json = {
            "format": FORMAT,
            "C": self.C,
            "trained_at": int(time.time()),
            "targets": [
                {"name": t.name, "labels": t.labels, "multi_label": t.multi_label} for t in targets
            ],
        }
        (out_dir / "config.json").write_text(json.dumps(config_json, indent=1), encoding="utf-8")

    def load(self, model_dir: Path) -> TfidfPredictor:
        return TfidfPredictor(Path(model_dir))


class TfidfPredictor:
    def __init__(self, model_dir: Path):
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        if config.get("format") != FORMAT:
            raise ValueError(f"{model_dir} is not a {FORMAT} model")
        self.targets = [
            TargetSpec(t["name"], list(t["labels"]), bool(t["multi_label"]))
            for t in config["targets"]
        ]
        self.features = _Features.load(model_dir)
        self.heads = [
            (
                np.load(model_dir / f"head_{i}_W.npy", allow_pickle=False),
                np.load(model_dir / f"head_{i}_b.npy", allow_pickle=False),
            )
            for i in range(len(self.targets))
        ]

    def predict(self, texts: Sequence[str]) -> list[dict[str, dict[str, float]]]:
        x = self.features.transform(list(texts))
        results: list[dict[str, dict[str, float]]] = [{} for _ in texts]
        for target, (w, b) in zip(self.targets, self.heads, strict=True):
            scores = _scores(np.asarray(x @ w + b, dtype=np.float64), target.multi_label)
            for row, result in zip(scores.tolist(), results, strict=True):
                result[target.name] = dict(zip(target.labels, row, strict=True))
        return results


def _wordless_lines(files: Sequence[tuple[str, Path]]) -> list[str]:
    """A warning naming the lines with no word the word block can use; DataRefused when no
    line has one."""
    lines, total = [], 0
    for name, path in files:
        for number, row in enumerate(iter_examples(path), start=1):
            total += 1
            if not _WORD.search(row["text"]):
                lines.append(f"{name}, line {number}")
    if lines and len(lines) == total:
        raise DataRefused(
            "no training text has a word of two letters or digits, which tfidf-logreg needs "
            f"(e.g. {lines[0]}); use a sentence-encoder base model for such texts"
        )
    if not lines:
        return []
    more = f" and {len(lines) - 3} more" if len(lines) > 3 else ""
    return [
        f"{', '.join(lines[:3])}{more}: no word of two letters or digits; tfidf-logreg "
        "sees only its characters"
    ]


def _refuse_unshared_characters(files: Sequence[tuple[str, Path]], n_texts: int) -> None:
    """DataRefused when no character n-gram is in two texts: from 50 texts on the ``char``
    block keeps only those (``min_df``), so it would be empty and training would fail. Any
    shared n-gram contains a shared bigram (``char_wb``: within space-padded words, lower
    case), so bigrams suffice; the check usually ends at the second text."""
    if n_texts < 50:  # as in _Features.fit: fewer texts keep every n-gram
        return
    seen: set[str] = set()
    for _, path in files:
        for row in iter_examples(path):
            bigrams = {
                padded[i : i + 2]
                for word in row["text"].lower().split()
                for padded in [f" {word} "]
                for i in range(len(padded) - 1)
            }
            if not seen.isdisjoint(bigrams) or len(seen) > MAX_CHECKED_BIGRAMS:
                return
            seen |= bigrams
    raise DataRefused(
        f"no character n-gram occurs in two of the {n_texts:,} training texts (e.g. unique "
        "random strings), so tfidf-logreg's character features, which keep only n-grams "
        "seen in at least 2 texts, would be empty; use texts that share words or "
        "characters, or a sentence-encoder base model"
    )


def _memory_estimate(sample: Sequence[str], n_texts: int, n_labels: int) -> tuple[int, str]:
    """Estimated peak training memory: features x labels x bytes per weight, plus scores.

    The features are counted on ``sample``; when it is a part of the ``n_texts`` texts, the
    count is extrapolated by Heaps' law (vocabulary ~ n^beta, beta measured between the half
    and the whole sample, within [0.3, 1]): memory stays bounded whatever the data size.
    """
    sample = list(sample)

    def features(texts: Sequence[str]) -> int:
        found = 0
        for options in BLOCKS.values():
            try:
                found += len(CountVectorizer(**options).fit(texts).vocabulary_)
            except ValueError:  # no terms at all
                pass
        return found

    counted = features(sample)
    how = ""
    if n_texts > len(sample) and len(sample) >= 2:
        half = max(1, features(sample[: len(sample) // 2]))
        beta = min(1.0, max(0.3, math.log(max(counted, 1) / half) / math.log(2)))
        counted = int(counted * (n_texts / len(sample)) ** beta)
        how = f" (extrapolated from {len(sample):,} of {n_texts:,} texts)"
    need = counted * n_labels * BYTES_PER_WEIGHT + n_texts * n_labels * 4 * 4
    return need, f"{counted:,} features{how} x {n_labels:,} labels x {BYTES_PER_WEIGHT} bytes"
