"""Benchmark the factory's encoder trainer against the reference baselines on the shared data.

Usage (from the repo root)::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/encoder_recipe.py --dataset massive_proxy

Prints test accuracy, macro-F1, training seconds, inference throughput (batches of 64) and
single-utterance p50 latency of the fine-tuned encoder, plus the reference baselines on the same
split (TF-IDF word 1-2 + char_wb 2-5 + logistic regression; frozen MiniLM embeddings + logistic
regression), and appends one JSON line per method to ``benchmarks/results/encoder_recipe.jsonl``.
Every timing is recorded with the 1-minute load average before and after (the machine is shared).
See ``bench_data.py`` for the splits (``massive_proxy`` is our stand-in for MASSIVE's 16 intents).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_data  # noqa: E402  (cheap: its heavy imports are inside its functions)

if TYPE_CHECKING:
    from helpers.factory.trainers.base import Example

# numpy, sklearn and helpers are imported where they are used, after the arguments are parsed:
# ``--help`` stays fast. The defaults of the training options come from the encoder's recipe
# (beside torch), so they are filled in after parsing (see ``main``).

RESULTS = HERE / "results" / "encoder_recipe.jsonl"
TFIDF_C = {"banking77": 20.0}


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def metrics(y_true, y_pred) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "test_accuracy": round(100 * accuracy_score(y_true, y_pred), 2),
        "macro_f1": round(100 * f1_score(y_true, y_pred, average="macro"), 2),
    }


def write(row: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def tfidf_baseline(data, c: float) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    la = load1()
    t0 = time.perf_counter()
    model = make_pipeline(
        make_union(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
        ),
        LogisticRegression(C=c, max_iter=2000),
    )
    model.fit(*data["train"])
    secs = time.perf_counter() - t0
    pred = model.predict(data["test"][0])
    return {
        "method": f"tfidf word1-2+char_wb2-5 + LR C={c:g}",
        **metrics(data["test"][1], pred),
        "train_seconds": round(secs, 1),
        "load_before": la,
        "load_after": load1(),
    }


def frozen_baseline(data) -> dict:
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression

    from helpers.factory.trainers.models import DEFAULT_ENCODER, resolve_encoder

    la = load1()
    t0 = time.perf_counter()
    st = SentenceTransformer(str(resolve_encoder(DEFAULT_ENCODER)), device="cpu")
    x_train = st.encode(data["train"][0], batch_size=64)
    t_embed = time.perf_counter() - t0
    clf = LogisticRegression(C=10.0, max_iter=3000).fit(x_train, data["train"][1])
    secs = time.perf_counter() - t0
    pred = clf.predict(st.encode(data["test"][0], batch_size=64))
    return {
        "method": "frozen MiniLM embeddings + LR C=10",
        **metrics(data["test"][1], pred),
        "train_seconds": round(secs, 1),
        "embed_seconds": round(t_embed, 1),
        "load_before": la,
        "load_after": load1(),
    }


def examples(texts, labels) -> list[Example]:
    from helpers.factory.trainers.base import Example

    return [Example(t, {"intent": y}) for t, y in zip(texts, labels, strict=True)]


def run_encoder(data, args) -> dict:
    from helpers.factory.trainers import encoder as enc_mod
    from helpers.factory.trainers.base import TargetSpec, TrainConfig
    from helpers.factory.trainers.encoder import model_format
    from helpers.factory.trainers.models import DEFAULT_ENCODER

    trainer = enc_mod.EncoderTrainer(
        DEFAULT_ENCODER,
        enc_mod.RECIPES[args.recipe],
        max_length=args.max_length,
        trainable_layers=args.trainable_layers,
        head_lr_factor=args.head_lr_factor,
        warm_start=not args.no_warm_start,
    )
    labels = sorted(set(data["train"][1]))
    target = TargetSpec("intent", labels, False)
    config = TrainConfig(args.steps, args.lr, args.weight_decay, args.warmup, args.seed)
    valid = examples(*data["validation"]) if data["validation"][0] and not args.no_valid else None
    reports = []

    def on_step(r) -> None:
        if r.valid_accuracy is not None or r.step == r.total_steps:
            print(
                f"  step {r.step}/{r.total_steps} loss {r.train_loss:.4f} valid_loss "
                f"{r.valid_loss} valid_acc {r.valid_accuracy}",
                flush=True,
            )
        reports.append(r)

    with tempfile.TemporaryDirectory() as tmp:
        la = load1()
        t0 = time.perf_counter()
        trainer.train(examples(*data["train"]), valid, [target], config, Path(tmp), on_step)
        secs = time.perf_counter() - t0
        lb = load1()
        meta = model_format.read(Path(tmp))
        predictor = trainer.load(Path(tmp))
        test_x, test_y = data["test"]
        scores = predictor.predict(test_x)
        pred = [max(s["intent"], key=s["intent"].__getitem__) for s in scores]
        row = {
            "method": f"encoder FT ({meta['recipe']['name']})",
            **metrics(test_y, pred),
            "train_seconds": round(secs, 1),
            "prepare_seconds": meta["training"]["prepare_seconds"],
            "frozen_pass_seconds": meta["training"]["frozen_pass_seconds"],
            "steps_seconds": meta["training"]["steps_seconds"],
            "load_before": la,
            "load_after": lb,
            "recipe": meta["recipe"],
            "max_length": meta["max_length"],
            "final_valid_accuracy": reports[-1].valid_accuracy if reports else None,
        }
        row["precision"] = predictor.precision
        if predictor.precision != "fp32":
            fp32 = enc_mod.EncoderPredictor.load(Path(tmp), precision="fp32")
            p32 = [max(s["intent"], key=s["intent"].__getitem__) for s in fp32.predict(test_x)]
            row["fp32"] = metrics(test_y, p32)
        if not args.no_speed:
            row.update(speed(predictor, test_x))
            if predictor.precision != "fp32":
                row["fp32"].update(speed(fp32, test_x))
    return row


def speed(predictor, texts: list[str]) -> dict:
    import numpy as np

    predictor.predict(texts[:64])  # warm-up
    la = load1()
    n = min(len(texts), 1280)
    t0 = time.perf_counter()
    for s in range(0, n, 64):
        predictor.predict(texts[s : s + 64])
    throughput = n / (time.perf_counter() - t0)
    rng = np.random.default_rng(0)
    lat = []
    for i in rng.choice(len(texts), size=min(200, len(texts)), replace=False):
        t1 = time.perf_counter()
        predictor.predict([texts[i]])
        lat.append(1000 * (time.perf_counter() - t1))
    return {
        "throughput_per_s_batch64": round(throughput, 1),
        "latency_p50_ms": round(statistics.median(lat), 2),
        "latency_p90_ms": round(float(np.percentile(lat, 90)), 2),
        "speed_load_before": la,
        "speed_load_after": load1(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--dataset", choices=["banking77", "clinc150", "massive_proxy"], default="massive_proxy"
    )
    # default None: the service's job defaults and the plain recipe's, filled in after parsing
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--weight-decay", type=float, default=None)
    ap.add_argument("--warmup", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--recipe", default=None, help="plain or extras (default: plain)")
    ap.add_argument("--max-length", type=int, default=None)
    ap.add_argument("--trainable-layers", type=int, default=None)
    ap.add_argument("--head-lr-factor", type=float, default=None)
    ap.add_argument("--no-warm-start", action="store_true")
    ap.add_argument("--no-valid", action="store_true", help="train without a validation set")
    ap.add_argument("--no-speed", action="store_true", help="skip the inference timings")
    ap.add_argument("--baselines", action="store_true", help="also run the reference baselines")
    ap.add_argument("--only-baselines", action="store_true")
    ap.add_argument("--data-root", type=Path, default=bench_data.DEFAULT_DATA_ROOT)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--note", default="")
    args = ap.parse_args()

    from helpers.factory.trainers import encoder as enc_mod

    defaults = enc_mod.EncoderTrainer.defaults  # the service's job defaults
    plain = enc_mod.PLAIN
    for name, value in (
        ("steps", defaults.training_steps),
        ("lr", defaults.learning_rate),
        ("weight_decay", defaults.weight_decay),
        ("warmup", defaults.warmup_fraction),
        ("recipe", plain.name),
        ("max_length", plain.max_length),
        ("trainable_layers", plain.trainable_layers),
        ("head_lr_factor", plain.head_lr_factor),
    ):
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.recipe not in enc_mod.RECIPES:  # checked here: the recipes live beside torch
        choices = ", ".join(map(repr, sorted(enc_mod.RECIPES)))
        ap.error(f"argument --recipe: invalid choice: {args.recipe!r} (choose from {choices})")

    data = bench_data.load(args.dataset, args.data_root)
    base = {
        "dataset": args.dataset,
        "n_train": len(data["train"][0]),
        "n_test": len(data["test"][0]),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "note": args.note,
    }
    if not args.only_baselines:
        write({**base, **run_encoder(data, args)}, args.out)
    if args.baselines or args.only_baselines:
        write({**base, **tfidf_baseline(data, TFIDF_C.get(args.dataset, 5.0))}, args.out)
        write({**base, **frozen_baseline(data)}, args.out)


if __name__ == "__main__":
    main()
