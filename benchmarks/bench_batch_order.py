"""Classify and embed a whole split in file order vs length-sorted batches (issue 25, item 5).

Usage (from the repo root)::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_batch_order.py [--dataset banking77]

Trains the lessons' encoder (``minilm-l6-v2``) on the bundled sample (``--data-source``: or a
folder in the mteb schema) on a local Classifier Factory (``--steps``, default 10: the speed of
inference does not depend on it), then sends the
test split of ``--dataset`` (``sample``, or ``banking77``/``clinc150`` from ``--data-root``) to
``POST /v1/classifications`` and ``POST /v1/embeddings`` through the ``mistralai`` SDK two ways,
alternating, ``--repeats`` times: batches of 64 in file order (what the lessons sent before) and
``helpers.evaluation.classify_all`` / ``helpers.ood.embed_all``, which sort the whole list by
length and restore the order. Prints utterances per second, the ratio, and the largest score
difference between the two orders; appends one JSON line to ``results/batch_order.jsonl`` with
the CPU flags and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

if TYPE_CHECKING:
    import numpy as np

# numpy, mistralai, bench_data and helpers are imported where they are used, after the
# arguments are parsed: ``--help`` stays fast.

RESULTS = HERE / "results" / "batch_order.jsonl"
BATCH = 64
T = TypeVar("T")


def test_texts(dataset: str, data_root: Path, limit: int) -> list[str]:
    from helpers import data

    if dataset == "sample":
        texts = data.load_raw(data.SAMPLE, "test")[0]
        texts = texts[texts["lang"] == "en"]["text"].tolist()
    else:
        with open(data_root / dataset / f"{dataset}.jsonl", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        texts = [r["text"] for r in rows if r.get("split") == "test"]
    return texts[:limit] if limit else texts


def file_order_classify(client, model: str, texts: list[str]) -> list[dict]:
    out = []
    for i in range(0, len(texts), BATCH):
        response = client.classifiers.classify(model=model, inputs=texts[i : i + BATCH])
        out += [{t: dict(v.scores) for t, v in item.items()} for item in response.results]
    return out


def file_order_embed(client, model: str, texts: list[str]) -> np.ndarray:
    import numpy as np

    rows: list[list[float]] = []
    for i in range(0, len(texts), BATCH):
        response = client.embeddings.create(model=model, inputs=texts[i : i + BATCH])
        rows += [d.embedding for d in sorted(response.data, key=lambda d: d.index)]
    return np.asarray(rows)


def timed(call: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="sample", help="sample | banking77 | clinc150")
    ap.add_argument("--data-root", type=Path, default=HERE.parent.parent / "shared" / "data")
    ap.add_argument("--limit", type=int, default=0, help="first N test texts (0: all)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument(
        "--data-source",
        default=None,
        help="the training data: the bundled sample, or a folder in the mteb schema",
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    from helpers import data
    from helpers.factory import stop_local_factory

    if args.data_source is None:
        args.data_source = data.SAMPLE

    work = Path(tempfile.mkdtemp(prefix="bench-order-"))
    try:
        row = run(args, work)
    finally:
        stop_local_factory(work / "factory")
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=1))


def run(args: argparse.Namespace, work: Path) -> dict:
    """Train, then time both orders; the result row."""
    import bench_data
    import numpy as np
    from mistralai.client import Mistral

    from helpers import data, evaluation, formatting, ood, training
    from helpers.factory import start_local_factory

    splits = data.load_splits(args.data_source, "en", 200, 600, 42)
    for name in ("train", "validation"):
        formatting.dataset_to_jsonl(getattr(splits, name), work / f"{name}.jsonl")
    client = Mistral(api_key="local", server_url=start_local_factory(work / "factory"))
    job = training.run_job(
        client,
        "minilm-l6-v2",
        work / "train.jsonl",
        work / "validation.jsonl",
        {"training_steps": args.steps},
        progress=False,
    )
    model = job.fine_tuned_model
    texts = test_texts(args.dataset, args.data_root, args.limit)
    evaluation.classify_all(client, model, texts[:64], progress=False)  # warm-up

    times: dict[str, list[float]] = {k: [] for k in ("classify_file", "classify_sorted")}
    times |= {"embed_file": [], "embed_sorted": []}
    for _ in range(args.repeats):
        t, by_file = timed(lambda: file_order_classify(client, model, texts))
        times["classify_file"].append(t)
        t, by_length = timed(lambda: evaluation.classify_all(client, model, texts, progress=False))
        times["classify_sorted"].append(t)
        t, vec_file = timed(lambda: file_order_embed(client, model, texts))
        times["embed_file"].append(t)
        t, vec_sorted = timed(lambda: ood.embed_all(client, model, texts, batch_size=BATCH))
        times["embed_sorted"].append(t)
    labels = sorted(by_file[0]["intent"])
    a = np.array([[r["intent"][k] for k in labels] for r in by_file])
    b = np.array([[r["intent"][k] for k in labels] for r in by_length])
    rate = {k: len(texts) / statistics.median(v) for k, v in times.items()}
    row = {
        "dataset": args.dataset,
        "texts": len(texts),
        "repeats": args.repeats,
        "utt_per_s": {k: round(v, 1) for k, v in rate.items()},
        "ratio_classify": round(rate["classify_sorted"] / rate["classify_file"], 2),
        "ratio_embed": round(rate["embed_sorted"] / rate["embed_file"], 2),
        "max_score_difference": float(np.abs(a - b).max()),
        "max_embedding_difference": float(np.abs(vec_file - vec_sorted).max()),
        "same_top_label": float((a.argmax(1) == b.argmax(1)).mean()),
        "cpu_flags": bench_data.cpu_flags(),
        "load1": round(os.getloadavg()[0], 2),
        "when": time.strftime("%Y-%m-%d %H:%M"),
    }
    return row


if __name__ == "__main__":
    main()
