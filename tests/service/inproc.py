"""In-process service helpers: the real FastAPI app, store and worker, no subprocess.

``TestClient`` drives the app through ASGI (no socket), with its lifespan, so the worker
threads validate and train for real. Only the TF-IDF trainer is registered, which keeps
start-up fast (no torch import).
"""

from __future__ import annotations

import json
import time

from fastapi.testclient import TestClient

from helpers.factory.trainers import Registry
from helpers.factory.trainers.tfidf import TfidfLogRegTrainer

TERMINAL = {"SUCCESS", "FAILED", "FAILED_VALIDATION", "CANCELLED"}
WORDS = {
    "alarm_set": ["wake", "alarm", "set", "morning", "seven", "ring"],
    "play_music": ["play", "song", "music", "album", "playlist", "jazz"],
    "weather_query": ["weather", "rain", "forecast", "sunny", "umbrella", "cold"],
}


def rows(n: int) -> list[dict]:
    labels = list(WORDS)
    return [
        {
            "text": " ".join(WORDS[labels[i % 3]][j % 6] for j in range(i % 3, i % 3 + 4)),
            "labels": {"intent": labels[i % 3]},
        }
        for i in range(n)
    ]


def jsonl(items: list) -> bytes:
    return "".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in items).encode()


def tfidf_registry() -> Registry:
    return Registry({"tfidf-logreg": TfidfLogRegTrainer()})


def upload(client: TestClient, content: bytes, name: str = "train.jsonl", **headers) -> str:
    response = client.post("/v1/files", files={"file": (name, content)}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["id"]


def wait(
    client: TestClient, job_id: str, statuses: set[str], timeout: float = 60, **headers
) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/fine_tuning/jobs/{job_id}", headers=headers).json()
        if job["status"] in statuses | TERMINAL:
            return job
        assert time.monotonic() < deadline, f"job stuck in {job['status']}"
        time.sleep(0.05)


def train(client: TestClient, steps: int = 10, n: int = 30, **headers) -> dict:
    """A TF-IDF job on ``rows(n)``, finished with SUCCESS."""
    job = run_tfidf_job(client, jsonl(rows(n)), steps, **headers)
    assert job["status"] == "SUCCESS", job["events"]
    return job


def run_tfidf_job(client: TestClient, content: bytes, steps: int = 10, **headers) -> dict:
    """Upload ``content``, train TF-IDF on it, return the job in its final status."""
    file_id = upload(client, content, **headers)
    job = client.post(
        "/v1/fine_tuning/jobs",
        headers=headers,
        json={
            "model": "tfidf-logreg",
            "training_files": [{"file_id": file_id}],
            "hyperparameters": {"training_steps": steps},
            "auto_start": True,
        },
    ).json()
    return wait(client, job["id"], TERMINAL, **headers)
