"""Issue 10's benchmark: the reference table and the default recipe on the real data sets.

One command (from the repo root)::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/recipe_table.py            # everything
    PYTHONPATH=$PWD .venv/bin/python benchmarks/recipe_table.py --rows default --seeds 0 1 2

Rows (``--rows``; each trains through the factory's own trainers unless it says scikit-learn):

* ``tfidf``: TF-IDF word 1-2 + char_wb 2-5, logistic regression C=5 (scikit-learn, reference);
* ``frozen``: frozen all-MiniLM-L6-v2 embeddings + logistic regression C=10 (reference);
* ``old-default``: the service default before issue 10 (top 2 layers, 300 x 32, lr 1e-4);
* ``ft600``: all layers fine-tuned, 600 x 32, lr 1e-4, no warm start, 5% warm-up;
* ``ft300``: all layers fine-tuned, 300 x 32, lr 2e-4, 10% warm-up, max 48 tokens, no warm start;
  the same model averaged 50/50 with the TF-IDF model's probabilities is reported as
  ``ft300+tfidf`` (one training; the encoder-only scores come from the same model);
* ``default``: the service's default recipe (``EncoderTrainer()`` with ``EncoderTrainer.defaults``)
  — what lessons 3-6 train — on MASSIVE for every ``--seeds``, and once (seed 0) on Banking77 and
  CLINC150's in-scope intents. Its encoder-only accuracy is reported too.

Data: ``massive_en`` is the cookbook's subset built by ``helpers.data.load_splits`` from
``../shared/data/massive_en`` (16 intents, 5,313 / 664 / 665); ``banking77`` and ``clinc150``
as in ``bench_data.py``. Accuracy is on each test split (the test split is read only here).

Timing: every row records wall seconds, the process's CPU seconds (user + sys, torch on
``INTENT_TORCH_THREADS`` threads, 2 by default here) and the 1-minute load average before and
after. On a shared machine wall time is inflated by other processes; ``cpu_s / 2`` is the
contention-free estimate of the time on 2 idle cores. Rows are appended to
``benchmarks/results/recipe_table.jsonl``; ``--table`` prints the Markdown table of that file.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("INTENT_TORCH_THREADS", "2")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

RESULTS = HERE / "results" / "recipe_table.jsonl"
ROWS = ("tfidf", "frozen", "old-default", "ft600", "ft300", "default")


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def massive(data_root: Path) -> dict:
    from helpers.data import load_splits

    s = load_splits(str(data_root / "massive_en"))
    return {
        k: (list(df["text"]), list(df["label_text"]))
        for k, df in (("train", s.train), ("validation", s.validation), ("test", s.test))
    }


def load_data(name: str, data_root: Path) -> dict:
    import bench_data

    return massive(data_root) if name == "massive_en" else bench_data.load(name, data_root)


def metrics(y_true, y_pred) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "test_accuracy": round(100 * accuracy_score(y_true, y_pred), 2),
        "macro_f1": round(100 * f1_score(y_true, y_pred, average="macro"), 2),
    }


class Timer:
    def __enter__(self):
        self.load_before, self.c0, self.t0 = load1(), cpu_seconds(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        self.cpu = cpu_seconds() - self.c0
        self.load_after = load1()

    def row(self, minus_wall: float = 0.0, minus_cpu: float = 0.0) -> dict:
        cpu = self.cpu - minus_cpu
        return {
            "train_wall_s": round(self.wall - minus_wall, 1),
            "train_cpu_s": round(cpu, 1),
            "est_2core_s": round(cpu / 2, 1),
            "load_before": self.load_before,
            "load_after": self.load_after,
        }


def tfidf_row(data: dict, c: float) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    with Timer() as t:
        model = make_pipeline(
            make_union(
                TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
            ),
            LogisticRegression(C=c, max_iter=2000),
        ).fit(*data["train"])
    return {
        "method": f"TF-IDF + logistic regression C={c:g} (scikit-learn)",
        **metrics(data["test"][1], model.predict(data["test"][0])),
        **t.row(),
    }


def frozen_row(data: dict) -> dict:
    import torch
    from sklearn.linear_model import LogisticRegression

    from helpers.factory.trainers.device import num_threads
    from helpers.factory.trainers.encoder import Encoder, load_tokenizer, pretrained_encoder
    from helpers.factory.trainers.encoder.network import pad
    from helpers.factory.trainers.models import DEFAULT_ENCODER, resolve_encoder

    path = resolve_encoder(DEFAULT_ENCODER)
    if path is None:
        raise SystemExit(f"the encoder {DEFAULT_ENCODER} is not available offline")
    torch.set_num_threads(num_threads())
    with Timer() as t:
        tok, enc = load_tokenizer(path), Encoder(pretrained_encoder(path)).eval()

        def embed(texts):
            ids = tok(texts, truncation=True, max_length=64)["input_ids"]
            order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
            with torch.inference_mode():
                pooled = torch.cat(
                    [
                        enc(*pad([ids[i] for i in order[s : s + 128]], tok.pad_token_id))
                        for s in range(0, len(order), 128)
                    ]
                )
                out = torch.empty_like(pooled)
                out[order] = pooled  # back to the order of texts
            return out.numpy()

        clf = LogisticRegression(C=10.0, max_iter=3000).fit(
            embed(data["train"][0]), data["train"][1]
        )
    pred = clf.predict(embed(data["test"][0]))
    return {
        "method": "frozen MiniLM embeddings + logistic regression C=10",
        **metrics(data["test"][1], pred),
        **t.row(),
    }


def encoder_rows(
    data: dict,
    name: str,
    trainer_kwargs: dict,
    config_kwargs: dict,
    seed: int,
    split: str = "test",
) -> list[dict]:
    """Train once; one row for the model as saved and, with votes, one for the heads alone.

    Scores are on ``data[split]`` (named ``test_accuracy``/``macro_f1`` whatever the split)."""
    from helpers.factory.trainers.base import Example, TargetSpec, TrainConfig
    from helpers.factory.trainers.encoder import (
        RECIPES,
        EncoderPredictor,
        EncoderTrainer,
        model_format,
    )

    kwargs = dict(trainer_kwargs)
    recipe = RECIPES[kwargs.pop("recipe", "plain")]
    trainer = EncoderTrainer(recipe=recipe, device="cpu", **kwargs)
    config = TrainConfig(**{**vars(trainer.defaults), **config_kwargs, "seed": seed})
    labels = sorted(set(data["train"][1]))
    train = [Example(x, {"intent": y}) for x, y in zip(*data["train"], strict=True)]
    with tempfile.TemporaryDirectory() as tmp:
        with Timer() as t:
            trainer.train(
                train,
                None,
                [TargetSpec("intent", labels, False)],
                config,
                Path(tmp),
                lambda r: None,
            )
        meta = model_format.read(Path(tmp))
        predictor = EncoderPredictor.load(Path(tmp))
        test_x, test_y = data[split]

        def accuracy(p) -> dict:
            pred = [max(s["intent"], key=s["intent"].get) for s in p.predict(test_x)]
            return metrics(test_y, pred)

        base = {
            "seed": seed,
            "recipe": meta["recipe"],
            "votes": {k: v for k, v in (meta.get("votes") or {}).items() if k != "rule"} or None,
            "max_length": meta["max_length"],
            "stages": meta["training"],
        }
        rows = [{"method": name, **accuracy(predictor), **t.row(), **base}]
        if predictor.votes is not None:  # the same model without the nearest-example votes
            votes_s = meta["training"]["votes_seconds"]
            predictor.scoring.votes = None
            rows.append(
                {
                    "method": f"{name}, without the nearest-example votes",
                    **accuracy(predictor),
                    **t.row(minus_wall=votes_s),
                    "note": "train_cpu_s includes the votes' pass; train_wall_s does not",
                    **base,
                }
            )
    return rows


OLD_DEFAULT = (
    {"trainable_layers": 2},
    {"training_steps": 300, "learning_rate": 1e-4, "weight_decay": 0.01, "warmup_fraction": 0.1},
)
FT600 = (
    {"trainable_layers": 6, "warm_start": False},
    {"training_steps": 600, "learning_rate": 1e-4, "warmup_fraction": 0.05},
)
FT300 = (
    {"trainable_layers": 6, "warm_start": False, "max_length": 48},
    {"training_steps": 300, "learning_rate": 2e-4, "warmup_fraction": 0.1, "weight_decay": 0.01},
)


def run(args) -> None:
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)

    def write(dataset: str, n: dict, row: dict) -> None:
        row = {
            "dataset": dataset,
            **n,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "note": args.note,
            **row,
        }
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        print(
            json.dumps({k: v for k, v in row.items() if k not in {"recipe", "stages"}}), flush=True
        )

    cache: dict[str, dict] = {}

    def data(name: str) -> tuple[dict, dict]:
        if name not in cache:
            cache[name] = load_data(name, args.data_root)
        d = cache[name]
        return d, {"n_train": len(d["train"][0]), "n_test": len(d["test"][0])}

    d, n = data("massive_en")
    if "tfidf" in args.rows:
        write("massive_en", n, tfidf_row(d, 5.0))
    if "frozen" in args.rows:
        write("massive_en", n, frozen_row(d))
    named = {
        "old-default": (
            "service default before issue 10 (top 2 layers, 300 x 32, lr 1e-4)",
            OLD_DEFAULT,
        ),
        "ft600": ("all layers fine-tuned, 600 x 32, lr 1e-4", FT600),
        "ft300": ("all layers fine-tuned, 300 x 32, lr 2e-4, 10% warm-up", FT300),
    }
    for key, (label, (tkw, ckw)) in named.items():
        if key in args.rows:
            for row in encoder_rows(d, label, tkw, with_steps(ckw, args.steps), 0):
                write("massive_en", n, row)
    if "default" in args.rows:
        label = "default recipe" if args.recipe == "plain" else f"{args.recipe} recipe"
        recipe = {"recipe": args.recipe}
        for seed in args.seeds:
            for row in encoder_rows(d, label, recipe, with_steps({}, args.steps), seed):
                write("massive_en", n, row)
        for name in args.other:
            d2, n2 = data(name)
            for row in encoder_rows(d2, label, recipe, with_steps({}, args.steps), 0):
                write(name, n2, row)


def table(path: Path) -> str:
    lines = [
        "| data set | method | seed | test acc. | macro-F1 | wall s | CPU s | CPU s / 2 "
        "| load 1-min |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for line in path.read_text().splitlines():
        r = json.loads(line)
        lines.append(
            f"| {r['dataset']} | {r['method']} | {r.get('seed', '–')} | {r['test_accuracy']:.2f} "
            f"| {r['macro_f1']:.2f} | {r['train_wall_s']} | {r['train_cpu_s']} | "
            f"{r['est_2core_s']} | {r['load_before']}→{r['load_after']} |"
        )
    return "\n".join(lines)


def add_common_arguments(ap: argparse.ArgumentParser, results: Path) -> None:
    """``--data-root``, ``--out`` (the JSONL file, default ``results``), ``--note``, ``--table``,
    ``--steps``."""
    ap.add_argument("--data-root", type=Path, default=HERE.parent.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=results)
    ap.add_argument("--note", default="")
    ap.add_argument("--table", action="store_true", help="print the Markdown table and exit")
    ap.add_argument(
        "--steps",
        type=int,
        default=None,
        help="training steps of every model trained, overriding its recipe's (quick checks)",
    )


def with_steps(config_kwargs: dict, steps: int | None) -> dict:
    """``config_kwargs`` (``TrainConfig`` overrides) with ``training_steps`` set to ``steps``
    when given."""
    return config_kwargs if steps is None else {**config_kwargs, "training_steps": steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument(
        "--other",
        nargs="*",
        default=["banking77", "clinc150"],
        choices=["banking77", "clinc150"],
        help="data sets trained once with the default recipe",
    )
    ap.add_argument(
        "--recipe",
        choices=["plain", "extras"],
        default="plain",
        help="the encoder recipe of the 'default' rows: plain (the default base model) or "
        "extras (minilm-l6-v2-extras)",
    )
    add_common_arguments(ap, RESULTS)
    args = ap.parse_args()
    if args.table:
        print(table(args.out))
        return
    run(args)


if __name__ == "__main__":
    main()
