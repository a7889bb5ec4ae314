"""One big request cannot stall a model, and waiting requests cannot freeze the service
(issue 29): a real service process, the real base encoder, concurrent HTTP clients."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from helpers.factory import start_local_factory, stop_local_factory

pytestmark = pytest.mark.slow  # a service process and the encoder

MODEL = "minilm-l6-v2"


@pytest.fixture(scope="module")
def service(module_tmp):
    data_dir = module_tmp("fair") / "factory"
    url = start_local_factory(data_dir, device="cpu")
    # load the base encoder once, outside the timings
    httpx.post(f"{url}/v1/embeddings", json={"model": MODEL, "input": ["warm up"]}, timeout=120)
    yield url
    stop_local_factory(data_dir)


def texts(n: int) -> list[str]:
    words = "wake me up at seven tomorrow and play some jazz in the kitchen please".split()
    return [" ".join(words[: 3 + i % 10]) + f" {i}" for i in range(n)]


def test_a_small_request_gets_a_turn_while_a_big_one_runs(service):
    finished: dict[str, float] = {}

    def big():
        body = {"model": MODEL, "input": texts(1500)}
        httpx.post(f"{service}/v1/embeddings", json=body, timeout=300).raise_for_status()
        finished["big"] = time.monotonic()

    start = time.monotonic()
    thread = threading.Thread(target=big)
    thread.start()
    time.sleep(1.0)  # the big request is being embedded
    sent = time.monotonic()
    small = httpx.post(f"{service}/v1/embeddings", json={"model": MODEL, "input": ["hi"]})
    latency = time.monotonic() - sent
    finished["small"] = time.monotonic()
    thread.join()
    print(f"one text: {latency:.2f} s while 1,500 took {finished['big'] - start:.1f} s")
    assert small.status_code == 200
    assert finished["small"] < finished["big"], "the small request waited for the whole big one"
    assert latency < 3.0


def test_waiting_embeddings_requests_do_not_freeze_other_routes(service):
    errors: list[str] = []

    def one():
        body = {"model": MODEL, "input": texts(64)}
        answer = httpx.post(f"{service}/v1/embeddings", json=body, timeout=300)
        if answer.status_code != 200:
            errors.append(answer.text)

    threads = [threading.Thread(target=one) for _ in range(50)]
    for thread in threads:
        thread.start()
    time.sleep(2.0)  # most of the 50 are waiting for their turn now
    timings = {}
    for route in ("/health", "/v1/models", "/v1/files"):
        sent = time.monotonic()
        assert httpx.get(f"{service}{route}", timeout=60).status_code == 200
        timings[route] = time.monotonic() - sent
    waiting = sum(t.is_alive() for t in threads)
    for thread in threads:
        thread.join()
    print(json.dumps({k: round(v, 3) for k, v in timings.items()}), f"{waiting} still waiting")
    assert not errors
    assert waiting >= 10, "the requests finished too fast to test anything"
    assert max(timings.values()) < 1.0, timings
