"""Peak memory of a job's validation as the training file grows (issue 29).

Usage (from the repo root)::

    .venv/bin/python benchmarks/bench_validation_memory.py [--sizes 25 100 500] [--model M]

For each size (MiB) it writes a training file of distinct synthetic utterances (random words, 16
intents), starts a local Classifier Factory process with ``--max-training-mb`` above the size
(the default cap, 64 MiB, would refuse the larger jobs at once), uploads the file through the
``mistralai`` SDK and creates a job with ``auto_start=False``; it reports the service's peak
resident memory (``VmHWM``) growth during upload and during validation, the validation time and
its outcome, and what the default cap answers. Appends one JSON line per size to
``results/validation_memory.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

if TYPE_CHECKING:
    from mistralai.client import Mistral
    from mistralai.client.models import ClassifierFineTuningJobDetails

# mistralai and helpers are imported where they are used, after the arguments are parsed:
# ``--help`` stays fast.

RESULTS = HERE / "results" / "validation_memory.jsonl"


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def job_details(client: Mistral, job_id: str) -> ClassifierFineTuningJobDetails:
    from mistralai.client.models import ClassifierFineTuningJobDetails

    job = client.fine_tuning.jobs.get(job_id=job_id)
    if not isinstance(job, ClassifierFineTuningJobDetails):
        raise TypeError(f"job {job_id}: expected a classifier job, got {type(job).__name__}")
    return job


def write_file(path: Path, mib: float, seed: int = 0) -> int:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(50_000)]
    intents = [f"intent_{i}" for i in range(16)]
    target = int(mib * 2**20)
    lines = 0
    with open(path, "w", encoding="utf-8") as f:
        while f.tell() < target:
            text = " ".join(rng.choices(words, k=rng.randint(4, 12)))
            f.write(json.dumps({"text": text, "labels": {"intent": rng.choice(intents)}}) + "\n")
            lines += 1
    return lines


def measure(mib: float, model: str, work: Path) -> dict:
    from mistralai.client import Mistral
    from mistralai.client.models import ClassifierFineTuningJob, TrainingFile

    from helpers.factory import start_local_factory, stop_local_factory

    path = work / f"train_{mib:g}.jsonl"
    lines = write_file(path, mib)
    data_dir = work / f"factory_{mib:g}"
    url = start_local_factory(data_dir, device="cpu", extra_args=["--max-training-mb", "100000"])
    try:
        pid = json.loads((data_dir / "server.json").read_text())["pid"]
        client = Mistral(api_key="local", server_url=url)
        client.models.list()
        start = peak_rss_mib(pid)
        with open(path, "rb") as f:
            uploaded = client.files.upload(file={"file_name": path.name, "content": f})
        after_upload = peak_rss_mib(pid)
        began = time.monotonic()
        created = client.fine_tuning.jobs.create(
            model=model,
            job_type="classifier",
            training_files=[TrainingFile(file_id=uploaded.id, weight=1)],
            hyperparameters={"training_steps": 10},
            auto_start=False,
        )
        if not isinstance(created, ClassifierFineTuningJob):
            raise TypeError(f"expected a classifier job, got {type(created).__name__}")
        job = job_details(client, created.id)
        while job.status in ("QUEUED", "VALIDATING"):
            time.sleep(0.5)
            job = job_details(client, job.id)
        seconds = time.monotonic() - began
        after_validation = peak_rss_mib(pid)
        errors = (e.data.get("error") for e in job.events or [] if isinstance(e.data, dict))
        error = next((str(message) for message in errors if message), "")
    finally:
        stop_local_factory(data_dir)
    path.unlink()
    return {
        "mib": mib,
        "lines": lines,
        "model": model,
        "status": str(job.status),
        "error": (error or "")[:300],
        "upload_peak_growth_mib": round(after_upload - start, 1),
        "validation_peak_growth_mib": round(after_validation - after_upload, 1),
        "validation_seconds": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", type=float, default=[25, 100, 500], help="MiB")
    ap.add_argument("--model", default="tfidf-logreg")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-validation-"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        for mib in args.sizes:
            row = measure(mib, args.model, work) | {
                "load1": round(os.getloadavg()[0], 2),
                "when": time.strftime("%Y-%m-%d %H:%M"),
            }
            print(json.dumps(row), flush=True)
            with open(args.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
