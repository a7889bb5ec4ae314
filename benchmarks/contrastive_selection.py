"""Choose the supervised contrastive term of the encoder recipe on validation data only.

For every ``--points`` (``WEIGHT:TEMPERATURE``) and ``--seeds``, the default recipe is trained
on the cookbook's MASSIVE subset with ``EncoderTrainer(contrastive_weight=WEIGHT,
contrastive_temperature=TEMPERATURE)`` (everything else default, votes of the nearest training
texts included). Each model is then scored on validation data only:

* accuracy on the subset's validation split (664 utterances) and on MASSIVE's official
  validation rows of the same 16 intents, minus texts in the subset (``official``);
* lesson 7's out-of-scope scores (``bench_oos.methods``) on the in-scope validation split
  against the validation half of the dropped intents' pool (2,702 utterances): AUROC of each.

The test split and the pool's test half are never read here. One JSON line per model goes to
``benchmarks/results/contrastive_selection.jsonl``; ``--table`` prints them as Markdown.

Usage (from the repo root; ~2 minutes per model on 2 idle cores)::

    HF_HUB_OFFLINE=1 PYTHONPATH=$PWD .venv/bin/python benchmarks/contrastive_selection.py \\
        --points 0:0.1 0.25:0.1 0.5:0.1 1.0:0.1 0.5:0.05 0.5:0.2 --seeds 0
    .venv/bin/python benchmarks/contrastive_selection.py --table
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_oos  # noqa: E402  (sets the offline environment and sys.path)
from memory_selection import official_validation  # noqa: E402
from recipe_table import add_common_arguments  # noqa: E402

if TYPE_CHECKING:
    import numpy as np

# numpy, torch and helpers are imported where they are used, after the arguments are parsed:
# ``--help`` stays fast.

RESULTS = HERE / "results" / "contrastive_selection.jsonl"
PARTS = ("train", "validation", "official", "oos_validation")


def one(
    d: dict, labels: list[str], weight: float, temperature: float, seed: int, steps: int | None
) -> dict:
    import numpy as np

    from helpers import ood
    from helpers.factory.trainers import encoder as enc
    from helpers.factory.trainers.base import Example, TargetSpec
    from helpers.factory.trainers.models import DEFAULT_ENCODER

    trainer = enc.EncoderTrainer(
        DEFAULT_ENCODER,
        enc.EXTRAS,
        contrastive_weight=weight,
        contrastive_temperature=temperature,
    )
    config = dataclasses.replace(enc.DEFAULTS, seed=seed)
    if steps is not None:
        config = dataclasses.replace(config, training_steps=steps)
    ex = [Example(t, {"intent": y}) for t, y in zip(*d["train"], strict=True)]
    target = TargetSpec("intent", labels, False)
    arrays: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        trainer.train(ex, None, [target], config, Path(tmp), lambda r: None)
        train_s = time.perf_counter() - t0
        predictor = trainer.load(Path(tmp))
        for part in PARTS:
            texts = d[part] if part.startswith("oos") else d[part][0]
            arrays[f"{part}_emb"], arrays[f"{part}_probs"] = bench_oos.service_scores(
                predictor, texts
            )
    index = {label: i for i, label in enumerate(labels)}
    row: dict[str, Any] = {"weight": weight, "temperature": temperature, "seed": seed}
    row["training_steps"] = config.training_steps
    row["train_s"] = round(train_s, 1)
    for part in ("validation", "official"):
        y = np.array([index[t] for t in d[part][1]])
        row[f"{part}_accuracy"] = round(
            100 * float((arrays[f"{part}_probs"].argmax(1) == y).mean()), 2
        )
    # bench_oos.methods scores validation and test parts; the test parts are the validation
    # arrays again here (never the real test data), and only validation AUROCs are kept
    a = {**arrays, "labels": labels}
    for part in ("validation", "oos_validation"):
        test_part = part.replace("validation", "test")
        a[f"{test_part}_emb"], a[f"{test_part}_probs"] = a[f"{part}_emb"], a[f"{part}_probs"]
    m = bench_oos.methods(d, a)
    row["valid_auroc"] = {
        name: round(
            ood.auroc(m[name]["validation"].tolist(), m[name]["oos_validation"].tolist()), 4
        )
        for name in bench_oos.METHODS
    }
    row["nearest_entropy_weights"] = m["_weights"]
    return row


def run(args) -> None:
    d = bench_oos.massive(args.data_root)
    d.pop("test"), d.pop("oos_test")  # never used here
    labels = sorted(set(d["train"][1]))
    d["official"] = official_validation(
        str(args.data_root / "massive_en"), labels, [*d["train"][0], *d["validation"][0]]
    )
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for point in args.points:
        weight, temperature = (float(x) for x in point.split(":"))
        for seed in args.seeds:
            row = {
                "time": stamp,
                "note": args.note,
                **one(d, labels, weight, temperature, seed, args.steps),
            }
            print(json.dumps(row), flush=True)
            with open(args.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")


def _pct(value) -> str:
    return "not measured" if value is None else f"{value}%"


def table(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    head = (
        "| weight | temperature | seed | validation acc. | official acc. "
        "| max_softmax | mahalanobis | nearest_neighbour | nearest_entropy | train s |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r['weight']} | {r['temperature']} | {r['seed']} | {r['validation_accuracy']}% "
        f"| {_pct(r['official_accuracy'])} | {r['valid_auroc']['max_softmax']:.3f} "
        f"| {r['valid_auroc']['mahalanobis']:.3f} | {r['valid_auroc']['nearest_neighbour']:.3f} "
        f"| {r['valid_auroc']['nearest_entropy']:.3f} | {r['train_s']} |\n"
        for r in rows
    )
    return head + body


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", nargs="+", default=["0:0.1", "0.5:0.1"], help="WEIGHT:TEMPERATURE")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    add_common_arguments(ap, RESULTS)
    args = ap.parse_args()
    if args.table:
        print(table(args.out))
        return
    run(args)


if __name__ == "__main__":
    main()
