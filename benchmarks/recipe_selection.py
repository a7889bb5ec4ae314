"""Validation-only screening of encoder recipes on the cookbook's MASSIVE subset.

Each candidate (``CANDIDATES``) trains ``EncoderTrainer`` on the train split exactly as
``recipe_table.py`` does and is scored on the **validation** split (accuracy, macro-F1); the
test split is dropped as soon as the data are loaded and never used, so a recipe can be chosen
here and confirmed once on test with ``recipe_table.py``. A candidate with votes of the nearest
training texts (``extras``) also records the validation accuracy of the same model without them.

Usage (from the repo root; one torch thread when the other core is busy)::

    INTENT_TORCH_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 \\
        PYTHONPATH=$PWD .venv/bin/python benchmarks/recipe_selection.py \\
        --candidates default layers6 blend50 --seeds 0 [--budget-min 60]
    .venv/bin/python benchmarks/recipe_selection.py --table

Timing (``recipe_table.Timer``): wall and CPU seconds (user + sys of this process) of
``trainer.train`` only, ``est_2core_s = cpu_s / 2`` (the contention-free estimate for 2 idle
cores) and the 1-minute load average before and after. One JSON line per (candidate, seed) is
appended to ``benchmarks/results/recipe_selection.jsonl``; ``--table`` prints it as Markdown.
Candidates run sequentially; ``--budget-min`` stops starting new trainings after that many
minutes of this invocation.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from recipe_table import (  # noqa: E402  (sets offline env defaults)
    add_common_arguments,
    encoder_rows,
    massive,
    with_steps,
)

RESULTS = HERE / "results" / "recipe_selection.jsonl"

# name -> (EncoderTrainer kwargs, TrainConfig overrides of EncoderTrainer.defaults)
CANDIDATES: dict[str, tuple[dict, dict]] = {
    "default": ({}, {}),
    "layers6": ({"trainable_layers": 6}, {}),
    "steps450": ({}, {"training_steps": 450}),
    "layers6-steps400": ({"trainable_layers": 6}, {"training_steps": 400}),
    "lr3e-4": ({}, {"learning_rate": 3e-4}),
    "smooth0.1": ({"label_smoothing": 0.1}, {}),
    "steps450-smooth0.1": ({"label_smoothing": 0.1}, {"training_steps": 450}),
    "steps600": ({}, {"training_steps": 600}),
    "batch64": ({"batch_size": 64}, {}),
    "steps450-decay0.8": ({"layer_lr_decay": 0.8}, {"training_steps": 450}),
    "layers6-steps500": ({"trainable_layers": 6}, {"training_steps": 500}),
    # 450 steps is the default from here on: "default" above is then 450 steps
    "wd0.1": ({}, {"weight_decay": 0.1}),
    "head3": ({"head_lr_factor": 3.0}, {}),
    "head30": ({"head_lr_factor": 30.0}, {}),
    "warmup0.2": ({}, {"warmup_fraction": 0.2}),
    # the extras recipe: the contrastive term and the votes of the nearest training texts
    # (memory_selection.py and contrastive_selection.py chose their settings); the default
    # ("default" above) is the plain recipe. The TF-IDF blends screened earlier (blend30,
    # blend50, steps450-blend50; in the results file) no longer exist.
    "extras": ({"recipe": "extras"}, {}),
}


def evaluate(data: dict, name: str, seed: int, steps: int | None = None) -> dict:
    """Train one candidate with one seed through ``recipe_table.encoder_rows``, scored on the
    validation split (``steps`` overrides the candidate's step count)."""
    from helpers.factory.trainers.base import TrainConfig
    from helpers.factory.trainers.encoder import EncoderTrainer

    trainer_kwargs, config_kwargs = CANDIDATES[name]
    config_kwargs = with_steps(config_kwargs, steps)
    rows = encoder_rows(data, name, trainer_kwargs, config_kwargs, seed, split="validation")
    model = rows[0]
    config = TrainConfig(**{**vars(EncoderTrainer.defaults), **config_kwargs, "seed": seed})
    row = {
        "candidate": name,
        "seed": seed,
        "val_accuracy": model["test_accuracy"],  # encoder_rows names scores after its test use
        "val_macro_f1": model["macro_f1"],
    }
    for other in rows[1:]:  # the same model without its votes
        row["val_accuracy_without_votes"] = other["test_accuracy"]
    return {
        **row,
        "cpu_s": model["train_cpu_s"],
        "est_2core_s": model["est_2core_s"],
        "wall_s": model["train_wall_s"],
        "load_before": model["load_before"],
        "load_after": model["load_after"],
        "trainer_kwargs": trainer_kwargs,
        "config": vars(config),
        "recipe": model["recipe"],
        "votes": model.get("votes"),
        "stages": model["stages"],
    }


def run(args) -> None:
    start = time.monotonic()
    data = massive(args.data_root)
    data.pop("test")  # never used here
    n = {"n_train": len(data["train"][0]), "n_validation": len(data["validation"][0])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for name in args.candidates:
            if time.monotonic() - start > args.budget_min * 60:
                print(f"budget of {args.budget_min} min spent; not starting {name} seed {seed}")
                return
            row = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **n, "note": args.note}
            row |= evaluate(data, name, seed, args.steps)
            with open(args.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            skip = {"recipe", "stages", "config", "trainer_kwargs", "blend"}
            print(json.dumps({k: v for k, v in row.items() if k not in skip}), flush=True)


def table(path: Path) -> str:
    """Markdown: each seed per candidate, then the candidate's mean (first-seen order)."""
    rows = defaultdict(list)
    for line in path.read_text().splitlines():
        r = json.loads(line)
        rows[r["candidate"]].append(r)
    out = [
        "| candidate | seed | val acc. | val macro-F1 | without blend/memory | CPU s "
        "| est. 2-core s "
        "| wall s | load 1-min |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rs in rows.items():
        for r in sorted(rs, key=lambda r: r["seed"]):
            alone = r.get("val_accuracy_encoder_alone", r.get("val_accuracy_without_memory"))
            out.append(
                f"| {name} | {r['seed']} | {r['val_accuracy']:.2f} | {r['val_macro_f1']:.2f} "
                f"| {'' if alone is None else f'{alone:.2f}'} | {r['cpu_s']} "
                f"| {r['est_2core_s']} | {r['wall_s']} | {r['load_before']}→{r['load_after']} |"
            )
        if len(rs) > 1:
            acc, f1, cpu, est = (
                sum(r[k] for r in rs) / len(rs)
                for k in ("val_accuracy", "val_macro_f1", "cpu_s", "est_2core_s")
            )
            out.append(
                f"| **{name} mean** | {len(rs)} seeds | **{acc:.2f}** | {f1:.2f} | "
                f"| {cpu:.1f} | {est:.1f} | | |"
            )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=["default"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--budget-min", type=float, default=60.0, help="no new training after this")
    add_common_arguments(ap, RESULTS)
    args = ap.parse_args()
    if args.table:
        print(table(args.out))
    else:
        run(args)


if __name__ == "__main__":
    main()
