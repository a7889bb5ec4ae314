"""Benchmark the local Classifier Factory end to end through the ``mistralai`` SDK.

For each data set (``../shared/data/<name>/<name>.jsonl``: fields ``text``, ``label_text``,
``split``) and each base model the service offers, this uploads the training split (and the
validation split when the data set has one: CLINC150 does, Banking77 does not, and nothing is
held out of its training split), trains with ``auto_start=True``, then measures on the test split:
accuracy, macro-F1, training seconds (RUNNING -> SUCCESS from the job's events, whole seconds),
classification throughput (``POST /v1/classifications`` in batches of 64) and single-utterance
latency p50/p95 after a warm-up. Prints a markdown table and appends JSON lines to
``benchmarks/results/service.jsonl``.

    python benchmarks/bench_service.py                       # every model, both data sets
    python benchmarks/bench_service.py --models tfidf-logreg --datasets banking77
    python benchmarks/bench_service.py --models minilm-l6-v2 --steps 300 --lr 1e-4

Without ``--steps`` each model uses its trainer's default; without ``--lr`` the SDK sends its
default learning rate (1e-4), which is also the encoders' default (``tfidf-logreg`` ignores it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mistralai.client import Mistral
    from mistralai.client.models import ClassifierFineTuningJobDetails

# mistralai, sklearn and helpers are imported where they are used, after the arguments are
# parsed: ``--help`` stays fast.

ROOT = Path(__file__).resolve().parent
DATA_ROOT = ROOT.parent.parent / "shared" / "data"
RESULTS = ROOT / "results" / "service.jsonl"
BATCH = 64


def load_splits(dataset: str, data_root: Path) -> dict[str, list[dict]]:
    splits: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    with open(data_root / dataset / f"{dataset}.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            splits[row["split"]].append(row)
    return splits


def upload_split(client: Mistral, rows: list[dict], path: Path) -> str:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(
                json.dumps(
                    {"text": row["text"], "labels": {"intent": row["label_text"]}},
                    ensure_ascii=False,
                )
                + "\n"
            )
    with open(path, "rb") as f:
        return client.files.upload(file={"file_name": path.name, "content": f}).id


def job_details(client: Mistral, job_id: str) -> ClassifierFineTuningJobDetails:
    from mistralai.client.models import ClassifierFineTuningJobDetails

    job = client.fine_tuning.jobs.get(job_id=job_id)
    if not isinstance(job, ClassifierFineTuningJobDetails):
        raise TypeError(f"job {job_id}: expected a classifier job, got {type(job).__name__}")
    return job


def train(
    client: Mistral, model: str, train_id: str, valid_id: str | None, args
) -> tuple[ClassifierFineTuningJobDetails, int, float]:
    from mistralai.client.models import (
        ClassifierFineTuningJob,
        ClassifierTrainingParametersTypedDict,
        TrainingFile,
    )

    hyperparameters: ClassifierTrainingParametersTypedDict = {}
    if args.steps:
        hyperparameters["training_steps"] = args.steps
    if args.lr:
        hyperparameters["learning_rate"] = args.lr
    started = time.monotonic()
    created = client.fine_tuning.jobs.create(
        model=model,
        job_type="classifier",
        training_files=[TrainingFile(file_id=train_id, weight=1)],
        validation_files=[valid_id] if valid_id else None,
        hyperparameters=hyperparameters,
        auto_start=True,
    )
    if not isinstance(created, ClassifierFineTuningJob):
        raise TypeError(f"{model}: expected a classifier job, got {type(created).__name__}")
    job = job_details(client, created.id)
    while job.status not in {"SUCCESS", "FAILED", "FAILED_VALIDATION", "CANCELLED"}:
        time.sleep(1.0)
        job = job_details(client, job.id)
    wall = time.monotonic() - started
    events = job.events or []
    if job.status != "SUCCESS":
        last = events[-1].data if events else None
        raise RuntimeError(f"{model}: job {job.id} ended {job.status}: {last}")
    at = {e.data["status"]: e.created_at for e in events if isinstance(e.data, dict)}
    return job, at["SUCCESS"] - at["RUNNING"], wall


def evaluate(client: Mistral, model_id: str, test: list[dict], latency_samples: int) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    texts = [row["text"] for row in test]
    predicted = []
    started = time.perf_counter()
    for i in range(0, len(texts), BATCH):
        result = client.classifiers.classify(model=model_id, inputs=texts[i : i + BATCH])
        for item in result.results:
            scores = item["intent"].scores
            predicted.append(max(scores, key=scores.__getitem__))
    throughput = len(texts) / (time.perf_counter() - started)
    gold = [row["label_text"] for row in test]
    for text in texts[:10]:  # warm-up
        client.classifiers.classify(model=model_id, inputs=[text])
    latencies = []
    for text in texts[10 : 10 + latency_samples]:
        t = time.perf_counter()
        client.classifiers.classify(model=model_id, inputs=[text])
        latencies.append((time.perf_counter() - t) * 1000)
    cuts = statistics.quantiles(latencies, n=20)
    return {
        "accuracy": accuracy_score(gold, predicted),
        "macro_f1": f1_score(gold, predicted, average="macro"),
        "throughput_per_s": throughput,
        "latency_p50_ms": statistics.median(latencies),
        "latency_p95_ms": cuts[18],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["banking77", "clinc150"])
    parser.add_argument(
        "--models",
        nargs="+",
        default=None,
        help="base model ids (default: every base model the service offers)",
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="training_steps (default: the trainer's)"
    )
    parser.add_argument("--lr", type=float, default=None, help="learning_rate (default: SDK's)")
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from mistralai.client import Mistral
    from mistralai.client.models import BaseModelCard

    from helpers.factory import start_local_factory, stop_local_factory

    data_dir = Path(tempfile.mkdtemp(prefix="bench_service_"))
    client = Mistral(api_key="local", server_url=start_local_factory(data_dir))
    rows = []
    try:
        cards = client.models.list().data or []
        models = args.models or [m.id for m in cards if isinstance(m, BaseModelCard)]
        for dataset in args.datasets:
            splits = load_splits(dataset, args.data_root)
            train_id = upload_split(client, splits["train"], data_dir / f"{dataset}_train.jsonl")
            valid_id = (
                upload_split(client, splits["validation"], data_dir / f"{dataset}_valid.jsonl")
                if splits["validation"]
                else None
            )
            for model in models:
                job, train_s, wall_s = train(client, model, train_id, valid_id, args)
                if not isinstance(job.fine_tuned_model, str):
                    raise RuntimeError(f"{model}: job {job.id} succeeded without a model")
                row = {
                    "dataset": dataset,
                    "model": model,
                    "training_steps": job.hyperparameters.training_steps,
                    "learning_rate": job.hyperparameters.learning_rate,
                    "n_train": len(splits["train"]),
                    "n_valid": len(splits["validation"]),
                    "n_test": len(splits["test"]),
                    "train_seconds": train_s,
                    "job_wall_seconds": round(wall_s, 1),
                    **evaluate(client, job.fine_tuned_model, splits["test"], args.latency_samples),
                    "cpus": os.cpu_count(),
                    "machine": platform.machine(),
                    "timestamp": int(time.time()),
                }
                rows.append(row)
                print(
                    f"{dataset} {model}: acc {row['accuracy']:.4f} f1 {row['macro_f1']:.4f} "
                    f"train {train_s}s",
                    flush=True,
                )
                args.out.parent.mkdir(parents=True, exist_ok=True)
                with open(args.out, "a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
    finally:
        stop_local_factory(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)

    print(
        "\n| data set | model | steps | test acc | macro-F1 | train s | utt/s (64) "
        "| p50 ms | p95 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['dataset']} | {r['model']} | {r['training_steps']} | "
            f"{r['accuracy']:.1%} | {r['macro_f1']:.1%} | {r['train_seconds']} | "
            f"{r['throughput_per_s']:.0f} | {r['latency_p50_ms']:.1f} | "
            f"{r['latency_p95_ms']:.1f} |"
        )


if __name__ == "__main__":
    main()
