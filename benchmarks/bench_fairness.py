"""Fairness of the service under one big request and under a queue (issue 29).

Usage (from the repo root)::

    .venv/bin/python benchmarks/bench_fairness.py [--big 10000] [--waiting 50]

Starts a local Classifier Factory process on the CPU with the base encoder (``minilm-l6-v2``,
embeddings) and measures, over real HTTP:

1. **one big request**: while one client embeds ``--big`` texts in a single request, another
   sends a one-text request every ``--every`` seconds; the one-text latencies (p50, p95, max)
   against the same client alone, and the big request's total time;
2. **a queue**: ``--waiting`` clients each send a 64-text embeddings request at once; while they
   wait, ``/health``, ``/v1/models`` and ``/v1/files`` are timed.

Before the fix, a 10,000-input request held the model ~56 s and a one-text client waited 55.3 s;
50 waiting requests froze ``/health`` for 14 s. Appends one JSON line to
``results/fairness.jsonl`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

RESULTS = HERE / "results" / "fairness.jsonl"
MODEL = "minilm-l6-v2"
WORDS = "wake me up at seven tomorrow and play some jazz in the kitchen please".split()


def texts(n: int) -> list[str]:
    return [" ".join(WORDS[: 3 + i % 10]) + f" {i}" for i in range(n)]


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50_s": round(statistics.median(ordered), 4),
        "p95_s": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 4),
        "max_s": round(ordered[-1], 4),
    }


def one_text(http, url: str) -> float:
    sent = time.monotonic()
    answer = http.post(f"{url}/v1/embeddings", json={"model": MODEL, "input": ["hi there"]})
    answer.raise_for_status()
    return time.monotonic() - sent


def big_request(url: str, n: int, every: float) -> dict:
    import httpx

    with httpx.Client(timeout=600) as http:
        alone = [one_text(http, url) for _ in range(10)]
        done: dict[str, float] = {}

        def big() -> None:
            with httpx.Client(timeout=3600) as own:
                start = time.monotonic()
                body = {"model": MODEL, "input": texts(n)}
                own.post(f"{url}/v1/embeddings", json=body).raise_for_status()
                done["seconds"] = time.monotonic() - start

        thread = threading.Thread(target=big)
        thread.start()
        time.sleep(min(1.0, every))  # the big request is being embedded
        during = []
        while thread.is_alive():
            during.append(one_text(http, url))
            time.sleep(every)
        thread.join()
    return {
        "big_inputs": n,
        "big_seconds": round(done["seconds"], 2),
        "one_text_alone": summary(alone),
        "one_text_during_big": summary(during) if during else None,
    }


def queue(url: str, waiting: int) -> dict:
    import httpx

    errors: list[str] = []

    def one() -> None:
        body = {"model": MODEL, "input": texts(64)}
        answer = httpx.post(f"{url}/v1/embeddings", json=body, timeout=600)
        if answer.status_code != 200:
            errors.append(f"{answer.status_code} {answer.text[:200]}")

    threads = [threading.Thread(target=one) for _ in range(waiting)]
    for thread in threads:
        thread.start()
    time.sleep(2.0)  # most of them are waiting for their turn now
    timings = {}
    still_waiting = sum(t.is_alive() for t in threads)
    for route in ("/health", "/v1/models", "/v1/files"):
        sent = time.monotonic()
        assert httpx.get(f"{url}{route}", timeout=120).status_code == 200
        timings[route] = round(time.monotonic() - sent, 4)
    for thread in threads:
        thread.join()
    return {
        "waiting": waiting,
        "still_waiting": still_waiting,
        "routes_s": timings,
        "errors": errors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big", type=int, default=10_000, help="texts in the big request")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between one-text calls")
    parser.add_argument("--waiting", type=int, default=50, help="concurrent 64-text requests")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    import httpx
    from bench_data import cpu_flags

    from helpers.factory import start_local_factory, stop_local_factory

    data_dir = Path(tempfile.mkdtemp(prefix="bench-fairness-")) / "factory"
    url = start_local_factory(data_dir, device="cpu")
    try:
        # load the base encoder once, outside the timings
        httpx.post(f"{url}/v1/embeddings", json={"model": MODEL, "input": ["warm"]}, timeout=300)
        row = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "model": MODEL,
            "cpu_flags": cpu_flags(),
            **big_request(url, args.big, args.every),
            "queue": queue(url, args.waiting),
        }
    finally:
        stop_local_factory(data_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    during = row["one_text_during_big"] or {}
    print("| figure | value |")
    print("|---|---|")
    print(f"| {args.big:,}-text embeddings request, total | {row['big_seconds']} s |")
    print(
        f"| one text alone, p50 / max | {row['one_text_alone']['p50_s']} / "
        f"{row['one_text_alone']['max_s']} s |"
    )
    print(
        f"| one text during it, p50 / p95 / max (n={during.get('n', 0)}) | "
        f"{during.get('p50_s')} / {during.get('p95_s')} / {during.get('max_s')} s |"
    )
    for route, seconds in row["queue"]["routes_s"].items():
        print(
            f"| {route} with {row['queue']['still_waiting']} of {args.waiting} requests "
            f"waiting | {seconds} s |"
        )
    print(f"| errors | {len(row['queue']['errors'])} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
