"""The plain recipe against the extras recipe, on the same splits and seeds (issue 26).

For each seed, both recipes (``helpers.factory.trainers.encoder.PLAIN`` and ``EXTRAS``) train on
the cookbook's MASSIVE subset (``bench_oos.massive``: 16 intents) with the service's defaults,
and are scored on the subset's test split and on MASSIVE's official validation rows of the same
16 intents (minus texts in the subset; ``memory_selection.official_validation``). One row per
recipe and seed (accuracy, training seconds, model size, whether training texts ship with it),
then one ``paired`` row per evaluation set: the mean accuracy of each recipe over the seeds, and
a paired comparison of the two (extras minus plain) on the same utterances: the discordant
counts and exact McNemar p-value per seed, and a 95% paired bootstrap interval of the mean
difference (utterances resampled, the difference averaged over seeds).

Usage (from the repo root)::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/recipe_compare.py --seeds 0 1 2
    .venv/bin/python benchmarks/recipe_compare.py --table

Rows go to ``benchmarks/results/recipe_compare.jsonl`` with the CPU flags and the 1-minute load.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_data  # noqa: E402
import bench_oos  # noqa: E402  (sets the offline environment and sys.path)
from memory_selection import official_validation  # noqa: E402
from recipe_table import add_common_arguments  # noqa: E402

# numpy, torch and helpers are imported where they are used, after the arguments are parsed:
# ``--help`` stays fast.

RESULTS = HERE / "results" / "recipe_compare.jsonl"
SETS = ("test", "official")


def folder_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6, 1)


def train_one(d: dict, recipe: str, seed: int, steps: int | None) -> dict:
    """Train ``recipe`` with ``seed``; per-utterance correctness on each evaluation set."""
    from helpers.factory.trainers import encoder as enc
    from helpers.factory.trainers.base import Example, TargetSpec
    from helpers.factory.trainers.encoder import model_format
    from helpers.factory.trainers.models import DEFAULT_ENCODER

    trainer = enc.EncoderTrainer(DEFAULT_ENCODER, enc.RECIPES[recipe])
    config = dataclasses.replace(enc.DEFAULTS, seed=seed)
    if steps is not None:
        config = dataclasses.replace(config, training_steps=steps)
    labels = sorted(set(d["train"][1]))
    ex = [Example(t, {"intent": y}) for t, y in zip(*d["train"], strict=True)]
    target = TargetSpec("intent", labels, False)
    with tempfile.TemporaryDirectory() as tmp:
        load_before, t0 = bench_oos.load1(), time.perf_counter()
        trainer.train(ex, None, [target], config, Path(tmp), lambda r: None)
        seconds = time.perf_counter() - t0
        load_after = bench_oos.load1()
        predictor = trainer.load(Path(tmp))
        correct = {}
        for name in SETS:
            texts, truth = d[name]
            scores = predictor.predict(texts)
            pred = [max(s["intent"], key=s["intent"].__getitem__) for s in scores]
            correct[name] = [p == y for p, y in zip(pred, truth, strict=True)]
        meta = model_format.read(Path(tmp))
        size = folder_mb(Path(tmp))
    return {
        "recipe": recipe,
        "seed": seed,
        "train_seconds": round(seconds, 1),
        "load_before": load_before,
        "load_after": load_after,
        "model_mb": size,
        "ships_training_vectors": meta["votes"] is not None,
        "training_steps": config.training_steps,
        "correct": correct,
    }


def paired(runs: list[dict], name: str, n_resamples: int = 2000) -> dict:
    """Extras minus plain on evaluation set ``name``, over the seeds both recipes ran."""
    import numpy as np

    from helpers.evaluation import paired_comparison

    seeds = sorted({r["seed"] for r in runs})
    by = {(r["recipe"], r["seed"]): np.asarray(r["correct"][name], dtype=float) for r in runs}
    plain = np.stack([by[("plain", s)] for s in seeds])
    extras = np.stack([by[("extras", s)] for s in seeds])
    diff = (extras - plain).mean(axis=0)  # per utterance, averaged over seeds
    rng = np.random.default_rng(0)
    n = diff.shape[0]
    boots = np.array([diff[rng.integers(0, n, n)].mean() for _ in range(n_resamples)])
    low, high = np.quantile(boots, [0.025, 0.975])
    per_seed = []
    for i, s in enumerate(seeds):  # the same counts and test as lessons 4 and 5
        c = paired_comparison(extras[i] == 1, plain[i] == 1)
        per_seed.append(
            {
                "seed": s,
                "only_extras": c["only_a"],
                "only_plain": c["only_b"],
                "mcnemar_p": round(c["mcnemar_p"], 4),
            }
        )
    return {
        "kind": "paired",
        "set": name,
        "n": int(n),
        "seeds": seeds,
        "plain_accuracy": [round(100 * float(x), 2) for x in plain.mean(axis=1)],
        "extras_accuracy": [round(100 * float(x), 2) for x in extras.mean(axis=1)],
        "plain_mean": round(100 * float(plain.mean()), 2),
        "extras_mean": round(100 * float(extras.mean()), 2),
        "difference_points": round(100 * float(diff.mean()), 2),
        "interval_points": [round(100 * float(low), 2), round(100 * float(high), 2)],
        "per_seed": per_seed,
    }


def run(args) -> None:
    import numpy as np

    d = bench_oos.massive(args.data_root)
    labels = sorted(set(d["train"][1]))
    d["official"] = official_validation(
        str(args.data_root / "massive_en"),
        labels,
        [*d["train"][0], *d["validation"][0], *d["test"][0]],
    )
    print({s: len(d[s][0]) for s in ("train", *SETS)}, flush=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    common = {"time": stamp, "note": args.note, "cpu_flags": bench_data.cpu_flags()}
    common["threads"] = os.environ.get("INTENT_TORCH_THREADS", "default")
    runs = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as f:
        for seed in args.seeds:
            for recipe in ("plain", "extras"):
                r = train_one(d, recipe, seed, args.steps)
                runs.append(r)
                row = {**common, "kind": "run", **{k: v for k, v in r.items() if k != "correct"}}
                row |= {
                    f"{s}_accuracy": round(100 * float(np.mean(r["correct"][s])), 2) for s in SETS
                }
                row |= {f"{s}_n": len(r["correct"][s]) for s in SETS}
                print(json.dumps(row), flush=True)
                f.write(json.dumps(row) + "\n")
        for name in SETS:
            row = {**common, **paired(runs, name)}
            print(json.dumps(row), flush=True)
            f.write(json.dumps(row) + "\n")


def table(path: Path) -> str:
    import numpy as np

    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    stamp = rows[-1]["time"]
    rows = [r for r in rows if r["time"] == stamp]
    lines = [
        "| set | n | plain (per seed) | extras (per seed) | extras − plain, points "
        "[95% paired interval] | McNemar p per seed |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["kind"] != "paired":
            continue
        lo, hi = r["interval_points"]
        ps = ", ".join(f"{s['mcnemar_p']:.2f}" for s in r["per_seed"])
        lines.append(
            f"| {r['set']} | {r['n']} | {r['plain_mean']:.2f}% ({r['plain_accuracy']}) "
            f"| {r['extras_mean']:.2f}% ({r['extras_accuracy']}) "
            f"| {r['difference_points']:+.2f} [{lo:+.2f}, {hi:+.2f}] | {ps} |"
        )
    runs = [r for r in rows if r["kind"] == "run"]
    for recipe in ("plain", "extras"):
        mine = [r for r in runs if r["recipe"] == recipe]
        if mine:
            secs = np.mean([r["train_seconds"] for r in mine])
            lines.append(
                f"\n{recipe}: training {secs:.0f} s (mean of {len(mine)}), model "
                f"{mine[0]['model_mb']} MB, training texts' vectors shipped: "
                f"{mine[0]['ships_training_vectors']}"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    add_common_arguments(ap, RESULTS)  # --data-root, --out, --note, --table, --steps
    args = ap.parse_args()
    if args.table:
        print(table(args.out))
    else:
        run(args)


if __name__ == "__main__":
    main()
