"""Issue 10's scale check: training time and peak memory of the default recipe at 5k-50k rows.

Usage (from the repo root)::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/scale_check.py [--rows 5000 20000 50000]
        [--steps N]

The training file concatenates the shared data sets (MASSIVE English train + validation,
Banking77, CLINC150, SNIPS; labels prefixed by the data set), shuffled with seed 0, and takes the
first N rows. Each size trains in its own subprocess (``EncoderTrainer()`` with its defaults;
``--steps`` overrides the step count to measure the row-dependent part quickly) and reports
wall seconds, CPU seconds (user + sys), the 1-minute load average, the process's peak RSS
(``ru_maxrss``) and the frozen-layer cache's mode and size. Rows are appended to
``benchmarks/results/scale.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "scale.jsonl"


def build_rows(data_root: Path) -> list[tuple[str, str]]:
    import numpy as np

    rows = []
    for split in ("train", "validation"):
        with open(data_root / "massive_en" / f"{split}.jsonl", encoding="utf-8") as f:
            rows += [("massive:" + r["label_text"], r["text"]) for r in map(json.loads, f)]
    for name in ("banking77", "clinc150", "snips"):
        with open(data_root / name / f"{name}.jsonl", encoding="utf-8") as f:
            rows += [(f"{name}:{r['label_text']}", r["text"]) for r in map(json.loads, f)]
    order = np.random.default_rng(0).permutation(len(rows))
    return [rows[i] for i in order]


def child(path: str, steps: int | None) -> None:
    """Train on the JSON file ``path`` in this process and print one JSON line."""
    sys.path.insert(0, str(HERE.parent))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from helpers.factory.trainers.base import Example, TargetSpec, TrainConfig
    from helpers.factory.trainers.encoder import EncoderTrainer, model_format

    rows = json.loads(Path(path).read_text())
    examples = [Example(text, {"intent": label}) for label, text in rows]
    target = TargetSpec("intent", sorted({label for label, _ in rows}), False)
    trainer = EncoderTrainer(device="cpu")
    d = trainer.defaults
    config = (
        d
        if steps is None
        else TrainConfig(steps, d.learning_rate, d.weight_decay, d.warmup_fraction)
    )
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    la, t0 = os.getloadavg()[0], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        trainer.train(examples, None, [target], config, Path(tmp), lambda r: None)
        wall = time.perf_counter() - t0
        meta = model_format.read(Path(tmp))
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    print(
        json.dumps(
            {
                "rows": len(rows),
                "labels": len(target.labels),
                "steps": config.training_steps,
                "train_wall_s": round(wall, 1),
                "train_cpu_s": round(cpu, 1),
                "est_2core_s": round(cpu / 2, 1),
                "peak_rss_mb": round(r1.ru_maxrss / 1024, 1),
                "load_before": round(la, 2),
                "load_after": round(os.getloadavg()[0], 2),
                "frozen_cache": meta["training"]["frozen_cache"],
                "frozen_cache_mb": meta["training"]["frozen_cache_mb"],
                "stages": {
                    k: meta["training"].get(k)
                    for k in (
                        "frozen_pass_seconds",
                        "prepare_seconds",
                        "steps_seconds",
                        "votes_seconds",
                    )
                },
            }
        ),
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", nargs="+", type=int, default=[5000, 20000, 50000])
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--data-root", type=Path, default=HERE.parent.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.steps)
        return
    rows = build_rows(args.data_root)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for n in args.rows:
        if n > len(rows):
            raise SystemExit(f"only {len(rows)} rows in the shared data sets, asked for {n}")
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(rows[:n], f)
        cmd = [sys.executable, __file__, "--child", f.name]
        if args.steps:
            cmd += ["--steps", str(args.steps)]
        try:
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        finally:
            os.unlink(f.name)
        result = json.loads(out.strip().splitlines()[-1])
        row = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **result}
        with open(args.out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
