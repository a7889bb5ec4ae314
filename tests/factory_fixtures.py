"""Helpers for the Classifier Factory tests: real servers on loopback, tiny data sets, polling."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from mistralai.client import Mistral

TERMINAL = {"SUCCESS", "FAILED", "FAILED_VALIDATION", "CANCELLED"}

VOCAB = {
    "alarm_set": ["wake", "alarm", "set", "morning", "seven", "ring"],
    "play_music": ["play", "song", "music", "album", "playlist", "jazz"],
    "weather_query": ["weather", "rain", "forecast", "sunny", "umbrella", "cold"],
}


class Server:
    """``python -m helpers.factory serve`` as a subprocess on a free loopback port."""

    def __init__(self, data_dir: Path, *extra: str, env: dict | None = None):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        key = extra[extra.index("--api-key") + 1] if "--api-key" in extra else None
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        cmd = [sys.executable, "-m", "helpers.factory", "serve", "--port", str(self.port),
               "--data-dir", str(data_dir), "--exit-with-parent", str(os.getpid()), *extra]
        self.process = subprocess.Popen(
            cmd, env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 180  # a loaded machine can take a minute to import
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the factory exited at start-up"
            try:
                response = httpx.get(f"{self.url}/health", timeout=1, headers=self.headers)
                if response.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError("the factory did not start")

    def client(self, api_key: str = "local") -> Mistral:
        return Mistral(api_key=api_key, server_url=self.url)

    def health(self) -> dict:
        return httpx.get(f"{self.url}/health", timeout=5, headers=self.headers).json()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)


def intent_rows(n: int, seed: int = 0, labels=tuple(VOCAB)) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = labels[i % len(labels)]
        words = rng.sample(VOCAB[label], 3) + [rng.choice(["please", "now", "today", "hey"])]
        rows.append({"text": " ".join(words), "labels": {"intent": label}})
    return rows


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text(
        "".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def upload(client: Mistral, path: Path, name: str | None = None) -> str:
    with open(path, "rb") as f:
        return client.files.upload(file={"file_name": name or path.name, "content": f}).id


def wait_for(client: Mistral, job_id: str, statuses: set[str], timeout: float = 90):
    deadline = time.monotonic() + timeout
    while True:
        job = client.fine_tuning.jobs.get(job_id=job_id)
        if job.status in statuses or job.status in TERMINAL:
            return job
        assert time.monotonic() < deadline, f"job {job_id} stuck in {job.status}"
        time.sleep(0.2)


def train(client: Mistral, train_id: str, valid_id: str | None = None, model="tfidf-logreg",
          steps: int = 20, timeout: float = 120):
    """The seed's sequence: create (auto_start False), wait VALIDATED, start, wait SUCCESS."""
    job = client.fine_tuning.jobs.create(
        model=model, job_type="classifier",
        training_files=[{"file_id": train_id, "weight": 1}],
        validation_files=[valid_id] if valid_id else None,
        hyperparameters={"training_steps": steps, "learning_rate": 1e-4},
        auto_start=False,
    )
    job = wait_for(client, job.id, {"VALIDATED"})
    assert job.status == "VALIDATED", job.events
    client.fine_tuning.jobs.start(job_id=job.id)
    job = wait_for(client, job.id, TERMINAL, timeout)
    assert job.status == "SUCCESS", job.events
    return job
