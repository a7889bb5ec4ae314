"""Choose the nearest-example votes (k, temperature, weight) on validation data only.

For each seed, the plain recipe (no votes, no contrastive term) is trained once on the
cookbook's MASSIVE subset; its sentence vectors and logits are kept for the train split and two
validation sets: the cookbook's own validation split (664 utterances) and MASSIVE's official
validation rows of the same 16 intents (1,226 utterances after removing texts that also occur in
the subset). Every grid point then blends the classifier's softmax with the votes of the ``k``
nearest training texts, exactly as
``helpers.factory.trainers.encoder.votes.NearestNeighbourVotes`` does (without the float16
storage), and is scored on both validation sets. The test split is never read here.

Usage (from the repo root)::

    HF_HUB_OFFLINE=1 PYTHONPATH=$PWD .venv/bin/python benchmarks/memory_selection.py \\
        --seeds 0 1 2 [--cache /tmp/memory_selection]
    .venv/bin/python benchmarks/memory_selection.py --table

One JSON line per (grid point) with the per-seed accuracies is appended to
``benchmarks/results/memory_selection.jsonl``; ``--table`` prints the last run as Markdown.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_oos  # noqa: E402  (sets the offline environment and sys.path)
from recipe_table import add_common_arguments  # noqa: E402

if TYPE_CHECKING:
    import numpy as np

# numpy, torch and helpers are imported where they are used, after the arguments are parsed:
# ``--help`` stays fast.

RESULTS = HERE / "results" / "memory_selection.jsonl"
GRID: dict[str, tuple[float, ...]] = {
    "k": (5, 10, 20),
    "temperature": (0.05, 0.1),
    "weight": (0.2, 0.3, 0.4, 0.5),
}


def official_validation(folder: str, labels: list[str], subset_texts: list[str]):
    """MASSIVE's official validation rows of the subset's intents, minus texts in the subset."""
    from helpers import data as data_mod

    raw, _ = data_mod.load_raw(folder, "validation")
    if "lang" in raw.columns:
        raw = raw[raw["lang"] == "en"]
    raw = raw[raw["label_text"].isin(labels)]
    seen = {t.strip().lower() for t in subset_texts}
    key = raw["text"].str.strip().str.lower()
    raw = raw[~key.isin(seen) & ~key.duplicated()]
    return raw["text"].tolist(), raw["label_text"].tolist()


def train_arrays(d: dict, seed: int, cache: Path | None, steps: int | None = None) -> dict:
    """Vectors and logits of the plain recipe (cached per seed; ``steps``
    overrides the recipe's step count)."""
    import numpy as np
    import torch

    from helpers.factory.trainers import encoder as enc
    from helpers.factory.trainers.base import Example, TargetSpec
    from helpers.factory.trainers.embeddings import embed
    from helpers.factory.trainers.models import DEFAULT_ENCODER

    if cache is not None and (cache / f"seed{seed}.npz").exists():
        return dict(np.load(cache / f"seed{seed}.npz"))
    labels = sorted(set(d["train"][1]))
    trainer = enc.EncoderTrainer(DEFAULT_ENCODER, enc.PLAIN)
    config = dataclasses.replace(enc.DEFAULTS, seed=seed)
    if steps is not None:
        config = dataclasses.replace(config, training_steps=steps)
    ex = [Example(t, {"intent": y}) for t, y in zip(*d["train"], strict=True)]
    target = TargetSpec("intent", labels, False)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        trainer.train(ex, None, [target], config, Path(tmp), lambda r: None)
        print(f"seed {seed}: trained in {time.perf_counter() - t0:.1f} s", flush=True)
        predictor = trainer.load(Path(tmp))
        head = predictor.heads[0]
        assert isinstance(head, torch.nn.Linear)
        w = head.weight.detach().numpy().astype(np.float64)
        b = head.bias.detach().numpy().astype(np.float64)
        arrays: dict[str, np.ndarray] = {}
        for part in ("train", "validation", "official"):
            emb = embed(predictor, d[part][0])[0].astype(np.float64)
            arrays[f"{part}_emb"], arrays[f"{part}_logits"] = emb, emb @ w.T + b
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        # numpy's stub: mypy matches **arrays against savez's allow_pickle: bool too
        np.savez(cache / f"seed{seed}.npz", **arrays)  # type: ignore[arg-type]
    return arrays


def votes(query: np.ndarray, train: np.ndarray, y: np.ndarray, n_labels: int, k: int, t: float):
    import numpy as np

    sims = query @ train.T
    top = np.argpartition(-sims, k, axis=1)[:, :k]
    s = np.take_along_axis(sims, top, 1) / t
    w = np.exp(s - s.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    out = np.zeros((len(query), n_labels))
    np.add.at(out, (np.repeat(np.arange(len(query)), k), y[top].ravel()), w.ravel())
    return out


def run(args) -> None:
    import numpy as np

    from helpers.ood import softmax

    d = bench_oos.massive(args.data_root)
    d.pop("test")  # never used here
    labels = sorted(set(d["train"][1]))
    d["official"] = official_validation(
        str(args.data_root / "massive_en"), labels, [*d["train"][0], *d["validation"][0]]
    )
    index = {label: i for i, label in enumerate(labels)}
    y_train = np.array([index[y] for y in d["train"][1]])
    ys = {p: np.array([index[y] for y in d[p][1]]) for p in ("validation", "official")}
    print({p: len(d[p][0]) for p in ("train", "validation", "official")}, flush=True)
    arrays = {s: train_arrays(d, s, args.cache, args.steps) for s in args.seeds}
    points = [("none", 0, 0.0, 0.0)] + [
        (f"k{k} t{t} w{w}", int(k), t, w)
        for k in GRID["k"]
        for t in GRID["temperature"]
        for w in GRID["weight"]
    ]
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name, k, t, w in points:
        row = {"time": stamp, "note": args.note, "point": name, "k": k, "temperature": t}
        row["weight"] = w
        for part in ("validation", "official"):
            accs = []
            for seed in args.seeds:
                a = arrays[seed]
                p = softmax(a[f"{part}_logits"])
                if w:
                    v = votes(a[f"{part}_emb"], a["train_emb"], y_train, len(labels), k, t)
                    p = (1 - w) * p + w * v
                accs.append(round(100 * float((p.argmax(1) == ys[part]).mean()), 2))
            row[part] = accs
            row[f"{part}_n"] = len(ys[part])
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(json.dumps({**row, "seeds": args.seeds}) + "\n")
    print(table(args.out))


def table(path: Path) -> str:
    import numpy as np

    rows = [json.loads(line) for line in path.read_text().splitlines()]
    last = [r for r in rows if r["time"] == rows[-1]["time"]]
    out = [
        "| votes (k, temperature, weight) | cookbook validation (seeds) | mean "
        "| official validation (seeds) | mean | both, pooled |",
        "|---|---|---|---|---|---|",
    ]
    for r in last:
        v, o = r["validation"], r["official"]
        nv, no = r["validation_n"], r["official_n"]
        pooled = (np.mean(v) * nv + np.mean(o) * no) / (nv + no)
        out.append(
            f"| {r['point']} | {' / '.join(f'{x:.2f}' for x in v)} | {np.mean(v):.2f} "
            f"| {' / '.join(f'{x:.2f}' for x in o)} | {np.mean(o):.2f} | {pooled:.2f} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--cache", type=Path, default=None, help="keep the trained arrays here")
    add_common_arguments(ap, RESULTS)  # --data-root, --out, --note, --table
    args = ap.parse_args()
    if args.table:
        print(table(args.out))
    else:
        run(args)


if __name__ == "__main__":
    main()
