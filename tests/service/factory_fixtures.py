"""Helpers for the Classifier Factory tests: the service in-process (FastAPI's ``TestClient``) or
as a real server on loopback, tiny data sets, polling. Both speak real HTTP semantics to the real
``mistralai`` SDK; the subprocess is for what needs a process (launcher, restart, the wire)."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from mistralai.client import Mistral

from helpers.factory.app import create_app
from helpers.factory.deps import Settings

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
        self.http = httpx.Client(base_url=self.url, timeout=30, headers=self.headers)
        cmd = [
            sys.executable,
            "-m",
            "helpers.factory",
            "serve",
            "--port",
            str(self.port),
            "--data-dir",
            str(data_dir),
            "--exit-with-parent",
            str(os.getpid()),
            *extra,
        ]
        self.process = subprocess.Popen(
            cmd,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
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
        return self.http.get("/health").json()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)


class InProcess:
    """The same service in this process through FastAPI's ``TestClient`` (no socket, no
    start-up cost); the SDK sends its requests through it. Logs go to ``server.log`` as with
    ``serve``. Same interface as :class:`Server`: ``url``, ``http``, ``client()``, ``stop()``."""

    url = "http://127.0.0.1"  # an allowed Host (the service checks it)

    def __init__(self, data_dir: Path, api_key: str | None = None, max_upload_mb: float = 512):
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.log = logging.FileHandler(data_dir / "server.log", encoding="utf-8")
        self.log.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(self.log)
        settings = Settings(
            data_dir=data_dir, api_key=api_key, max_upload_bytes=int(max_upload_mb * 1024 * 1024)
        )
        self.http = TestClient(
            create_app(settings),
            base_url=self.url,
            raise_server_exceptions=False,
            headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
        )
        self.http.__enter__()  # runs the lifespan: the worker starts

    def client(self, api_key: str = "local") -> Mistral:
        return Mistral(api_key=api_key, server_url=self.url, client=self.http)

    def health(self) -> dict:
        return self.http.get("/health").json()

    def stop(self) -> None:
        self.http.__exit__(None, None, None)
        logging.getLogger().removeHandler(self.log)
        self.log.close()


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


def train(
    client: Mistral,
    train_id: str,
    valid_id: str | None = None,
    model="tfidf-logreg",
    steps: int = 20,
    timeout: float = 120,
    learning_rate: float = 1e-4,
):
    """The seed's sequence: create (auto_start False), wait VALIDATED, start, wait SUCCESS."""
    job = client.fine_tuning.jobs.create(
        model=model,
        job_type="classifier",
        training_files=[{"file_id": train_id, "weight": 1}],
        validation_files=[valid_id] if valid_id else None,
        hyperparameters={"training_steps": steps, "learning_rate": learning_rate},
        auto_start=False,
    )
    job = wait_for(client, job.id, {"VALIDATED"})
    assert job.status == "VALIDATED", job.events
    client.fine_tuning.jobs.start(job_id=job.id)
    job = wait_for(client, job.id, TERMINAL, timeout)
    assert job.status == "SUCCESS", job.events
    return job
