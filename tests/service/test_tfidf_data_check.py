"""Issue 29: TF-IDF data whose character n-grams are all unique fails at validation, with a
message naming the problem, not in training. A real job on the app served on a socket."""

from __future__ import annotations

import httpx
from inproc import jsonl, run_tfidf_job


def unique_texts(n: int) -> list[str]:
    """``n`` texts of 4 CJK characters each, no character in two texts (one word each)."""
    return ["".join(chr(0x4E00 + i * 4 + j) for j in range(4)) for i in range(n)]


def run_job(http: httpx.Client, texts: list[str]) -> dict:
    rows = [{"text": t, "labels": {"intent": "ab"[i % 2]}} for i, t in enumerate(texts)]
    return run_tfidf_job(http, jsonl(rows), steps=3)


def test_all_unique_character_ngrams_fail_validation_with_the_reason(live):
    with httpx.Client(base_url=live(), timeout=30) as http:
        job = run_job(http, unique_texts(60))
        assert job["status"] == "FAILED_VALIDATION", job["events"]
        error = job["events"][-1]["data"]["error"]
        assert "no character n-gram occurs in two of the 60 training texts" in error
        assert not any(e["data"].get("status") == "RUNNING" for e in job["events"])

        shared = unique_texts(59) + [unique_texts(1)[0][:2] + "丸"]  # one bigram shared: fine
        assert run_job(http, shared)["status"] == "SUCCESS"
        assert run_job(http, unique_texts(49))["status"] == "SUCCESS"  # min_df 1 below 50
