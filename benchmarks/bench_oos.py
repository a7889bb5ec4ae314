"""Benchmark lesson 7's out-of-scope detectors on CLINC150 and on the cookbook's MASSIVE subset.

Usage (from the repo root; the machine is shared, so run it niced)::

    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python benchmarks/bench_oos.py --dataset clinc150
    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python benchmarks/bench_oos.py --dataset massive

* ``clinc150``: the default encoder (``minilm-l6-v2``, default recipe) trained on the 150
  in-scope intents (15,000 rows) with the in-scope validation split; scored on the 4,500
  in-scope and 1,000 ``oos`` test rows. The 100 ``oos`` validation rows are used only to pick
  the recommended method (highest validation AUROC).
* ``massive``: ``../shared/data/massive_en`` through the cookbook's procedure
  (``helpers.data.load_splits``: 16 intents, 5,313 / 664 / 665 rows); the out-of-scope pool is
  every utterance of the 44 dropped intents (train + validation files), split in half
  (stratified, seed 42) into validation and test parts — exactly what lesson 7 does.

For every method: AUROC on test, and out-of-scope recall / in-scope accuracy (correct intent and
not rejected) at the threshold that keeps 95% of the in-scope *validation* utterances. The
classifier's plain accuracy is reported too: no method changes the predicted intent. The
methods are the lesson's (``helpers.ood``): ``max_softmax``, ``margin``, ``mahalanobis`` (the
fine-tuned pooled embedding, shared covariance fitted on the training embeddings) and
``temperature`` (max softmax after temperature scaling fitted on in-scope validation),
``nearest_neighbour`` (cosine similarity to the nearest training embedding) and
``nearest_entropy`` (that similarity and minus the entropy of the probabilities, each
standardised on in-scope validation, weights 0.3/0.5/0.7 chosen by validation AUROC).
Embeddings come from ``helpers.factory.trainers.embeddings.embed`` — the function behind
``POST /v1/embeddings`` — called in-process. The probabilities are the service's: the heads'
softmax blended with the votes of the nearest training texts for an extras model (``--recipe``,
default ``extras``), by the predictor's own scoring rule; the "logits" the temperature is fitted
on are their logarithms, as lesson 7 computes them from the API's scores. One JSON line per
method goes to
``benchmarks/results/oos.jsonl`` with the 1-minute load average.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_data  # noqa: E402  (cheap: its heavy imports are inside its functions)

if TYPE_CHECKING:
    import numpy as np

# numpy, torch and helpers are imported where they are used, after the arguments are parsed:
# ``--help`` stays fast, and so does importing this module (other benchmarks do).

RESULTS = HERE / "results" / "oos.jsonl"
METHODS = (
    "max_softmax",
    "margin",
    "mahalanobis",
    "temperature",
    "nearest_neighbour",
    "nearest_entropy",
)


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def clinc(data_root: Path) -> dict:
    rows = bench_data._rows(data_root, "clinc150")

    def part(split, oos):
        sel = [r for r in rows if r["split"] == split and (r["label_text"] == "oos") == oos]
        return [r["text"] for r in sel], [r["label_text"] for r in sel]

    return {
        "train": part("train", False),
        "validation": part("validation", False),
        "test": part("test", False),
        "oos_validation": part("validation", True)[0],
        "oos_test": part("test", True)[0],
    }


def massive(data_root: Path, seed: int = 42) -> dict:
    from helpers import data as data_mod
    from helpers import ood

    folder = str(data_root / "massive_en")
    splits = data_mod.load_splits(folder, "en", 200, 600, seed)
    kept = splits.labels()
    in_texts = [*splits.train["text"], *splits.validation["text"], *splits.test["text"]]
    pool = ood.out_of_scope_pool(folder, "en", kept, in_texts)
    oos_valid, oos_test = ood.split_pool(pool, seed)
    out: dict[str, Any] = {
        name: (getattr(splits, name)["text"].tolist(), getattr(splits, name)["label_text"].tolist())
        for name in data_mod.SPLITS
    }
    out["oos_validation"], out["oos_test"] = oos_valid["text"].tolist(), oos_test["text"].tolist()
    out["pool_intents"] = int(pool["label_text"].nunique())
    return out


def service_scores(predictor, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The pooled embeddings of ``texts`` and the scores the service returns for them: the
    model's scoring rule (the head's softmax, blended with the votes of the nearest training
    texts for an extras model), run on those embeddings."""
    import torch

    from helpers.factory.trainers.embeddings import embed

    emb = embed(predictor, texts)[0]
    with torch.inference_mode():
        probs = predictor.scoring(torch.from_numpy(emb).float())[0]
    return emb, probs.double().numpy()


def train_and_embed(
    d: dict, seed: int, cache: Path | None, steps: int | None = None, recipe: str = "extras"
) -> dict:
    """Train the default encoder; embeddings and logits of every part (cached in ``cache``).

    ``steps`` overrides the default recipe's step count (quick checks)."""
    import numpy as np

    from helpers.factory.trainers import encoder as enc_mod
    from helpers.factory.trainers.base import Example, TargetSpec
    from helpers.factory.trainers.models import DEFAULT_ENCODER

    if cache is not None and (cache / "arrays.npz").exists():
        arrays = dict(np.load(cache / "arrays.npz"))
        return {**arrays, **json.loads((cache / "meta.json").read_text())}
    labels = sorted(set(d["train"][1]))
    trainer = enc_mod.EncoderTrainer(DEFAULT_ENCODER, enc_mod.RECIPES[recipe])
    config = dataclasses.replace(enc_mod.DEFAULTS, seed=seed)
    if steps is not None:
        config = dataclasses.replace(config, training_steps=steps)
    ex = [Example(t, {"intent": y}) for t, y in zip(*d["train"], strict=True)]
    valid = [Example(t, {"intent": y}) for t, y in zip(*d["validation"], strict=True)]
    with tempfile.TemporaryDirectory() as tmp:
        la, t0 = load1(), time.perf_counter()
        trainer.train(
            ex, valid, [TargetSpec("intent", labels, False)], config, Path(tmp), lambda r: None
        )
        train_seconds = time.perf_counter() - t0
        predictor = trainer.load(Path(tmp))
        arrays = {}
        t1 = time.perf_counter()
        for name in ("train", "validation", "test", "oos_validation", "oos_test"):
            texts = d[name] if name.startswith("oos") else d[name][0]
            arrays[f"{name}_emb"], arrays[f"{name}_probs"] = service_scores(predictor, texts)
        embed_seconds = time.perf_counter() - t1
    meta = {
        "labels": labels,
        "train_seconds": round(train_seconds, 1),
        "embed_seconds": round(embed_seconds, 1),
        "train_load_before": la,
        "train_load_after": load1(),
        "precision": predictor.precision,
        "votes": predictor.votes is not None,
        "recipe": recipe,
        "config": config.__dict__,
    }
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(cache / "arrays.npz", **arrays)
        (cache / "meta.json").write_text(json.dumps(meta))
    return {**arrays, **meta}


def methods(d: dict, a: dict) -> dict[str, Any]:
    """In-scope scores of every method on validation (in/oos) and test (in/oos): ``{method:
    {part: scores}}``, plus ``_temperature`` and ``_weights`` (``nearest_entropy``'s)."""
    from helpers import ood

    labels = a["labels"]
    index = {label: i for i, label in enumerate(labels)}
    y_valid = [index[y] for y in d["validation"][1]]
    parts = ("validation", "oos_validation", "test", "oos_test")
    logits = {p: ood.logits_from_probs(a[f"{p}_probs"]) for p in parts}
    temperature = ood.fit_temperature(logits["validation"], y_valid)
    maha = ood.Mahalanobis.fit(a["train_emb"], d["train"][1])
    nearest = ood.NearestNeighbour.fit(a["train_emb"])
    out: dict[str, Any] = {name: {} for name in METHODS}
    signals = {}
    for p in parts:
        probs = a[f"{p}_probs"]
        out["max_softmax"][p] = ood.max_softmax(probs)
        out["margin"][p] = ood.margin(probs)
        out["mahalanobis"][p] = maha.score(a[f"{p}_emb"])
        out["temperature"][p] = ood.max_softmax(ood.softmax(logits[p], temperature))
        out["nearest_neighbour"][p] = nearest.score(a[f"{p}_emb"])
        signals[p] = {"nearest": out["nearest_neighbour"][p], "neg_entropy": ood.neg_entropy(probs)}
    combined = ood.Combined.fit_best(signals["validation"], signals["oos_validation"])
    for p in parts:
        out["nearest_entropy"][p] = combined.score(signals[p])
    out["_temperature"] = temperature
    out["_weights"] = combined.weights
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", choices=["clinc150", "massive"], required=True)
    ap.add_argument("--seed", type=int, default=0, help="training seed")
    ap.add_argument(
        "--steps",
        type=int,
        default=None,
        help="training steps (default: the recipe's training_steps)",
    )
    ap.add_argument(
        "--recipe",
        default="extras",
        help="the encoder recipe to train, a name in helpers.factory.trainers.encoder.RECIPES: "
        "plain or extras (default: extras, the one the targets are set for)",
    )
    ap.add_argument("--data-root", type=Path, default=bench_data.DEFAULT_DATA_ROOT)
    ap.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="folder to keep the trained embeddings in (re-runs skip training)",
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--note", default="", help="kept in every row written")
    args = ap.parse_args()

    import numpy as np

    from helpers import ood
    from helpers.factory.trainers import encoder as enc_mod

    if args.recipe not in enc_mod.RECIPES:  # checked here: the recipes live beside torch
        choices = ", ".join(map(repr, sorted(enc_mod.RECIPES)))
        ap.error(f"argument --recipe: invalid choice: {args.recipe!r} (choose from {choices})")

    d = clinc(args.data_root) if args.dataset == "clinc150" else massive(args.data_root)
    sizes = {
        k: len(v[0]) if isinstance(v, tuple) else len(v)
        for k, v in d.items()
        if k != "pool_intents"
    }
    print("sizes:", sizes, flush=True)
    a = train_and_embed(d, args.seed, args.cache, args.steps, args.recipe)
    scores = methods(d, a)
    test_pred = np.asarray(a["labels"])[a["test_probs"].argmax(1)]
    correct = test_pred == np.asarray(d["test"][1])
    rows = []
    for name in METHODS:
        s = scores[name]
        rows.append(
            ood.evaluate(
                name, s["validation"], s["oos_validation"], s["test"], s["oos_test"], correct
            )
        )
    recommended = max(rows, key=lambda r: r["valid_auroc"])["method"]
    common = {
        "note": args.note,
        "dataset": args.dataset,
        "sizes": sizes,
        "classifier_accuracy": round(float(correct.mean()), 4),
        "temperature": round(scores["_temperature"], 3),
        "nearest_entropy_weights": {k: round(w, 2) for k, w in scores["_weights"].items()},
        "recommended": recommended,
        "load_now": load1(),
        **{
            k: a[k]
            for k in (
                "train_seconds",
                "embed_seconds",
                "train_load_before",
                "train_load_after",
                "precision",
            )
        },
        "training_steps": a["config"]["training_steps"],
        "pool_intents": d.get("pool_intents"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(
        f"\n{args.dataset}: classifier accuracy {correct.mean():.1%}, "
        f"T={scores['_temperature']:.3f}, trained in {a['train_seconds']} s "
        f"(load {a['train_load_before']}→"
        f"{a['train_load_after']}); recommended (validation AUROC): {recommended}"
    )
    print("| method | valid AUROC | test AUROC | OOS recall | in-scope acc. | in-scope kept |")
    print("|---|---|---|---|---|---|")
    with open(args.out, "a", encoding="utf-8") as f:
        for r in rows:
            print(
                f"| {r['method']} | {r['valid_auroc']:.3f} | {r['auroc']:.3f} | "
                f"{r['oos_recall']:.1%} | {r['in_scope_accuracy']:.1%} | "
                f"{r['in_scope_recall']:.1%} |"
            )
            f.write(
                json.dumps(
                    {
                        **common,
                        **{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()},
                    }
                )
                + "\n"
            )


if __name__ == "__main__":
    main()
