"""Load on the local Classifier Factory: many single-utterance clients vs one batching client.

Starts a service on loopback (a temporary data directory), trains a small ``minilm-l6-v2``
classifier (``--base-model``) on Banking77 (``../shared/data``, ``--data-root``; synthetic
utterances when it is absent), then, in
one run and against the same model:

1. **batch**: one client sends batches of 64 utterances back to back for ``--batch-seconds``:
   utterances/s and the median time of one full batch;
2. **load**: ``--clients`` concurrent clients (asyncio, one keep-alive connection each) each send
   one utterance at a time for ``--duration`` seconds: utterances/s, errors, p50/p95 latency.
   It runs twice (``--client both``): with minimal HTTP/1.1 clients on asyncio streams, as load
   generators such as ``wrk`` are written, and with httpx's ``AsyncClient``. The clients share
   the machine with the service; httpx spends about a millisecond of CPU per request in Python,
   which on a 2-core machine is taken from the forward passes, so the first figure measures the
   service and the second shows what a heavy client in the same box costs. The target is read
   on the first (``ratio_load_to_batch``); both are recorded;
3. **largest requests**: to a TF-IDF model, one request at the character limit (accepted), one
   8 MiB input and one body over the body limit (refused), with the service's peak memory.

Targets (issue 14): 0 errors; load utterances/s >= 70% of batch utterances/s; p95 <= 2x one full
batch time; peak memory within 1 GB of idle. Other processes on the machine slow everything
down: the load average is recorded with the figures (``benchmarks/results/load.jsonl``,
``--out``).

    python benchmarks/bench_load.py                     # 64 clients, 30 s
    python benchmarks/bench_load.py --duration 10 --clients 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from helpers.factory import start_local_factory, stop_local_factory

ROOT = Path(__file__).resolve().parent
DATA_ROOT = ROOT.parent.parent / "shared" / "data"
RESULTS = ROOT / "results" / "load.jsonl"
BATCH = 64
MAX_REQUESTS_PER_CLIENT = 100_000  # a bound on every loop, whatever the duration


def utterances(
    n_train: int, seed: int = 0, data_root: Path = DATA_ROOT
) -> tuple[list[dict], list[str]]:
    """(training rows, utterances to classify) from Banking77, else synthetic."""
    rng = random.Random(seed)
    banking = data_root / "banking77" / "banking77.jsonl"
    if banking.exists():
        rows = [json.loads(line) for line in banking.read_text(encoding="utf-8").splitlines()]
        train = [r for r in rows if r["split"] == "train"]
        rng.shuffle(train)
        train = [
            {"text": r["text"], "labels": {"intent": r["label_text"]}} for r in train[:n_train]
        ]
        test = [r["text"] for r in rows if r["split"] == "test"]
        return train, test
    words = {
        "alarm": "wake alarm set morning",
        "music": "play song jazz album",
        "weather": "rain forecast sunny cold",
    }
    train = [
        {"text": " ".join(rng.sample(w.split(), 3)), "labels": {"intent": k}}
        for _ in range(n_train // 3)
        for k, w in words.items()
    ]
    return train, [r["text"] for r in train]


def rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # the service has exited
        pass
    return 0.0


class PeakMemory:
    """Samples a process's resident memory every 0.2 s in a thread."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, rss_mib(pid), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, rss_mib(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def train_model(
    url: str, rows: list[dict], steps: int, folder: Path, base: str = "minilm-l6-v2"
) -> str:
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with httpx.Client(base_url=url, timeout=60) as client:
        with open(path, "rb") as f:
            file_id = client.post("/v1/files", files={"file": ("train.jsonl", f)}).json()["id"]
        job = client.post(
            "/v1/fine_tuning/jobs",
            json={
                "model": base,
                "training_files": [{"file_id": file_id}],
                "hyperparameters": {"training_steps": steps},
                "auto_start": True,
            },
        ).json()
        deadline = time.monotonic() + 1800
        while job["status"] not in {"SUCCESS", "FAILED", "FAILED_VALIDATION", "CANCELLED"}:
            assert time.monotonic() < deadline, "training took over 30 minutes"
            time.sleep(1)
            job = client.get(f"/v1/fine_tuning/jobs/{job['id']}").json()
        if job["status"] != "SUCCESS":
            raise RuntimeError(f"training ended {job['status']}: {job['events'][-1]}")
        return job["fine_tuned_model"]


def batch_phase(url: str, model: str, texts: list[str], seconds: float) -> dict:
    times, n = [], 0
    with httpx.Client(base_url=url, timeout=120) as client:
        client.post("/v1/classifications", json={"model": model, "input": texts[:BATCH]})
        start = time.monotonic()
        for i in range(MAX_REQUESTS_PER_CLIENT):
            if time.monotonic() - start >= seconds:
                break
            chunk = [texts[(i * BATCH + j) % len(texts)] for j in range(BATCH)]
            t0 = time.monotonic()
            response = client.post("/v1/classifications", json={"model": model, "input": chunk})
            response.raise_for_status()
            times.append(time.monotonic() - t0)
            n += BATCH
        elapsed = time.monotonic() - start
    return {
        "utterances_per_s": n / elapsed,
        "batch_seconds_p50": statistics.median(times),
        "batches": len(times),
    }


class RawClient:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams (what load generators such as
    ``wrk`` do): it spends far less CPU per request than httpx, so on a small machine the figures
    measure the service rather than the clients sharing its cores."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.url = url
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _post(self, path: str, payload: dict) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        body = json.dumps(payload).encode()
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    async def classify(self, model: str, text: str) -> str | None:
        """None when answered, else what went wrong (the connection is then opened anew)."""
        try:
            status, body = await self._post("/v1/classifications", {"model": model, "input": text})
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            await self.close()
            self.reader = self.writer = None
            return f"{type(exc).__name__}: {exc}"
        if status != 200 or b'"results"' not in body:
            return f"{status}: {body[:100]!r}"
        return None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class HttpxClient:
    """httpx's ``AsyncClient`` with one keep-alive connection, as an application would use it."""

    def __init__(self, url: str):
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self.client = httpx.AsyncClient(base_url=url, timeout=60, limits=limits)

    async def classify(self, model: str, text: str) -> str | None:
        try:
            response = await self.client.post(
                "/v1/classifications", json={"model": model, "input": text}
            )
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if response.status_code != 200:
            return f"{response.status_code}: {response.text[:100]}"
        return None

    async def close(self) -> None:
        await self.client.aclose()


class LoadClient(Protocol):
    async def classify(self, model: str, text: str) -> str | None: ...

    async def close(self) -> None: ...


CLIENTS: dict[str, Callable[[str], LoadClient]] = {"raw": RawClient, "httpx": HttpxClient}


async def load_phase(
    url: str, model: str, texts: list[str], clients: int, seconds: float, kind: str = "raw"
) -> dict:
    """``clients`` concurrent clients of ``kind`` (see :data:`CLIENTS`), each sending one
    utterance at a time until ``seconds`` have passed."""
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + seconds

    async def one_client(k: int) -> None:
        client = CLIENTS[kind](url)
        try:
            for i in range(MAX_REQUESTS_PER_CLIENT):
                if time.monotonic() >= deadline:
                    return
                t0 = time.monotonic()
                error = await client.classify(model, texts[(k * 7919 + i) % len(texts)])
                if error is None:
                    latencies.append(time.monotonic() - t0)
                else:
                    errors.append(error)
        finally:
            await client.close()

    start = time.monotonic()
    await asyncio.gather(*(one_client(k) for k in range(clients)))
    elapsed = time.monotonic() - start
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
    return {
        "utterances_per_s": len(latencies) / elapsed,
        "requests": len(latencies),
        "errors": len(errors),
        "error_examples": errors[:3],
        "latency_p50_s": pick(0.5),
        "latency_p95_s": pick(0.95),
    }


def largest_requests(url: str, model: str, pid: int) -> dict:
    """One request at the character limit (10,000 inputs, 980,000 characters in all), one with
    a single 8 MiB input (over the limit) and one over the body limit, to a TF-IDF model (whose
    features grow with the characters it is sent); the service's memory over the three."""
    memory = PeakMemory(pid)
    before = rss_mib(pid)
    with httpx.Client(base_url=url, timeout=600) as client:
        at_limit = client.post(
            "/v1/classifications", json={"model": model, "input": ["book a flight " * 7] * 10_000}
        )
        one_big = client.post(
            "/v1/classifications", json={"model": model, "input": "x" * (8 * 1024 * 1024)}
        )
        over = client.post(
            "/v1/classifications", json={"model": model, "input": "x" * (17 * 1024 * 1024)}
        )
    peak = memory.stop()
    return {
        "at_char_limit_status": at_limit.status_code,
        "one_8mib_input_status": one_big.status_code,
        "over_body_limit_status": over.status_code,
        "largest_requests_memory_before_mib": round(before),
        "largest_requests_memory_peak_mib": round(peak),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--batch-seconds", type=float, default=15.0)
    parser.add_argument("--train-examples", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument(
        "--base-model", default="minilm-l6-v2", help="the base model of the model under load"
    )
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    parser.add_argument("--out", type=Path, default=RESULTS, help="the JSON lines file")
    parser.add_argument(
        "--client",
        choices=["raw", "httpx", "both"],
        default="both",
        help="load clients: minimal HTTP/1.1 on asyncio streams (little CPU, like wrk), httpx's "
        "AsyncClient (more CPU per request, taken from the service on a small machine), or both "
        "one after the other (default)",
    )
    args = parser.parse_args()

    train_rows, texts = utterances(args.train_examples, data_root=args.data_root)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_load_") as tmp:
        data_dir = Path(tmp) / "factory"
        url = start_local_factory(data_dir, timeout=180)
        try:
            pid = httpx.get(f"{url}/health").json()["pid"]
            model = train_model(url, train_rows, args.steps, Path(tmp), base=args.base_model)
            tfidf = train_model(url, train_rows, 20, Path(tmp), base="tfidf-logreg")
            httpx.post(
                f"{url}/v1/classifications", json={"model": model, "input": texts[:8]}, timeout=120
            )
            time.sleep(1)
            idle = rss_mib(pid)
            memory = PeakMemory(pid)
            batch = batch_phase(url, model, texts, args.batch_seconds)
            print("batch:", json.dumps(batch), flush=True)
            loads = {}
            for kind in CLIENTS if args.client == "both" else (args.client,):
                loads[kind] = asyncio.run(
                    load_phase(url, model, texts, args.clients, args.duration, kind)
                )
                print(f"load ({kind} clients):", json.dumps(loads[kind]), flush=True)
            load = loads[next(iter(loads))]
            peak = memory.stop()
            largest = largest_requests(url, tfidf, pid)
            print("largest:", json.dumps(largest), flush=True)
        finally:
            stop_local_factory(data_dir)
    load_after = os.getloadavg()
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_before": round(load_before[0], 2),
        "load_average_after": round(load_after[0], 2),
        "base_model": args.base_model,
        "clients": args.clients,
        "duration_s": args.duration,
        "batch": batch,
        "client": next(iter(loads)),
        "load": load,
        "loads": {
            kind: {
                **figures,
                "ratio_load_to_batch": figures["utterances_per_s"] / batch["utterances_per_s"],
                "p95_over_batch_time": figures["latency_p95_s"] / batch["batch_seconds_p50"],
            }
            for kind, figures in loads.items()
        },
        **largest,
        "ratio_load_to_batch": load["utterances_per_s"] / batch["utterances_per_s"],
        "p95_over_batch_time": load["latency_p95_s"] / batch["batch_seconds_p50"],
        "memory_idle_mib": round(idle),
        "memory_peak_mib": round(peak),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a", encoding="utf-8") as f:
        f.write(json.dumps(result) + "\n")
    print(
        f"| figure | value | target |\n|---|---|---|\n"
        f"| batch of {BATCH}: utterances/s | {batch['utterances_per_s']:.0f} | |\n"
        f"| batch of {BATCH}: time of one batch (p50) | {batch['batch_seconds_p50']:.3f} s | |\n"
        + "".join(
            f"| {args.clients} {kind} clients: utterances/s | {f['utterances_per_s']:.0f} "
            f"({f['ratio_load_to_batch']:.1%} of batch) | >= 70% |\n"
            f"| {args.clients} {kind} clients: errors | {f['errors']} | 0 |\n"
            f"| {args.clients} {kind} clients: latency p50 / p95 | {f['latency_p50_s']:.3f} / "
            f"{f['latency_p95_s']:.3f} s ({f['p95_over_batch_time']:.2f}x batch) "
            f"| p95 <= 2x |\n"
            for kind, f in result["loads"].items()
        )
        + f"| memory idle / peak under load | {idle:.0f} / {peak:.0f} MiB | "
        f"peak - idle <= 1024 |\n"
        f"| TF-IDF: 980,000-character request / one 8 MiB input / 17 MiB body | "
        f"{largest['at_char_limit_status']} / {largest['one_8mib_input_status']} / "
        f"{largest['over_body_limit_status']} | 200 / 413 / 413 |\n"
        f"| TF-IDF: memory before / peak over those three | "
        f"{largest['largest_requests_memory_before_mib']} / "
        f"{largest['largest_requests_memory_peak_mib']} MiB | peak - before <= 1024 |\n"
        f"| load average before / after | {load_before[0]:.1f} / {load_after[0]:.1f} | |"
    )


if __name__ == "__main__":
    main()
