"""How long a cancel waits: MiniLM jobs on the bundled sample, cancelled at a chosen moment.

Starts the local Classifier Factory (a real process, driven by the ``mistralai`` SDK), uploads
the bundled English sample's training file, and for each ``--after`` delay starts a default
``minilm-l6-v2`` job, cancels it that many seconds after it turned RUNNING (0.5 s: inside the
frozen pass, before the first step; later: between steps) and measures the seconds from the
cancel request to CANCELLED, and whether any checkpoint was written. Appends JSON lines to
``benchmarks/results/cancel.jsonl`` (``--out``).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_cancel.py --after 0.5 3
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mistralai.client import Mistral
    from mistralai.client.models import ClassifierFineTuningJobDetails

# mistralai and helpers are imported where they are used, after the arguments are parsed:
# ``--help`` stays fast.

RESULTS = Path(__file__).resolve().parent / "results" / "cancel.jsonl"


def job_details(client: Mistral, job_id: str) -> ClassifierFineTuningJobDetails:
    from mistralai.client.models import ClassifierFineTuningJobDetails

    job = client.fine_tuning.jobs.get(job_id=job_id)
    if not isinstance(job, ClassifierFineTuningJobDetails):
        raise TypeError(f"job {job_id}: expected a classifier job, got {type(job).__name__}")
    return job


def wait_status(client: Mistral, job_id: str, wanted: set[str], timeout: float = 300) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        status = str(job_details(client, job_id).status)
        if status in wanted:
            return status
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} not in {wanted} after {timeout} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--after", nargs="+", type=float, default=[0.5, 3.0])
    ap.add_argument("--steps", type=int, default=300, help="training_steps of each job")
    ap.add_argument("--out", type=Path, default=RESULTS, help="the JSON lines file")
    args = ap.parse_args()

    from mistralai.client import Mistral
    from mistralai.client.models import ClassifierFineTuningJob, TrainingFile

    from helpers import data
    from helpers.factory import start_local_factory, stop_local_factory

    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows, _ = data.load_raw("sample", "train", lang="en")
    with tempfile.TemporaryDirectory() as tmp:
        train = Path(tmp) / "train.jsonl"
        with open(train, "w", encoding="utf-8") as f:
            for text, label in zip(rows["text"], rows["label_text"], strict=True):
                f.write(json.dumps({"text": text, "labels": {"intent": label}}) + "\n")
        factory_dir = Path(tmp) / "factory"
        url = start_local_factory(factory_dir)
        try:
            client = Mistral(api_key="local", server_url=url)
            with open(train, "rb") as f:
                file_id = client.files.upload(file={"file_name": "train.jsonl", "content": f}).id
            for after in args.after:
                job = client.fine_tuning.jobs.create(
                    model="minilm-l6-v2",
                    job_type="classifier",
                    training_files=[TrainingFile(file_id=file_id, weight=1)],
                    hyperparameters={"training_steps": args.steps, "learning_rate": 2e-4},
                    auto_start=True,
                )
                if not isinstance(job, ClassifierFineTuningJob):
                    raise TypeError(f"expected a classifier job, got {type(job).__name__}")
                wait_status(client, job.id, {"RUNNING"})
                time.sleep(after)
                start = time.perf_counter()
                client.fine_tuning.jobs.cancel(job_id=job.id)
                status = wait_status(client, job.id, {"CANCELLED", "SUCCESS", "FAILED"})
                waited = time.perf_counter() - start
                done = job_details(client, job.id)
                row = {
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "n_train": len(rows),
                    "cancel_after_running_s": after,
                    "seconds_to_cancelled": round(waited, 3),
                    "status": status,
                    "checkpoints": len(done.checkpoints or []),
                    "load1": os.getloadavg()[0],
                }
                print(json.dumps(row))
                with open(args.out, "a", encoding="utf-8") as out:
                    out.write(json.dumps(row) + "\n")
        finally:
            stop_local_factory(factory_dir)


if __name__ == "__main__":
    main()
