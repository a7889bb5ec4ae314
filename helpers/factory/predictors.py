"""Loaded fine-tuned models: an in-memory LRU, and micro-batching of concurrent requests.

Classification never reloads a model per request: :class:`PredictorCache` keeps the last few
loaded (each loaded once even under concurrent requests). Each cached model sits behind a
:class:`Batcher`: requests that arrive while the model is busy are joined into one forward pass
(at most ``max_batch`` texts). A pass starts once no request has arrived for ``gap_s`` (or
``max_batch`` texts wait, or ``max_wait_s`` has passed since the first): a lone client pays only
the short gap, while a burst of clients answering the previous pass is collected into one pass
instead of a small pass followed by a large one. Many clients sending one utterance each so get
about the throughput of one client sending batches.
Predictors guard their own state (the encoder serialises its forward passes; TF-IDF has none).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

from .store import ModelRow, Store
from .trainers import Registry
from .trainers.base import Predictor

log = logging.getLogger(__name__)

Scores = list[dict[str, dict[str, float]]]
MAX_BATCH = 64  # texts per forward pass when joining requests
MAX_WAIT_S = 0.03  # the longest a forward pass waits for more requests to join ...
GAP_S = 0.003  # ... it starts as soon as no request has arrived for this long


class ModelUnavailable(Exception):
    """The model exists but cannot be loaded on this machine."""


class Batcher:
    """Runs ``predictor.predict`` on one thread, joining requests that are waiting."""

    def __init__(
        self,
        predictor: Predictor,
        model_dir: Path,
        max_batch: int = MAX_BATCH,
        max_wait_s: float = MAX_WAIT_S,
        gap_s: float = GAP_S,
    ):
        self.predictor = predictor
        self.model_dir = model_dir
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.gap_s = gap_s
        self._pending: deque[tuple[list[str], Future]] = deque()
        self._waiting_texts = 0
        self._last_arrival = 0.0
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="factory-batcher", daemon=True)
        self._thread.start()

    def submit(self, texts: Sequence[str]) -> Future:
        future: Future = Future()
        with self._cond:
            if self._closed:
                raise ModelUnavailable("the model was unloaded; retry")
            self._pending.append((list(texts), future))
            self._waiting_texts += len(texts)
            self._last_arrival = time.monotonic()
            self._cond.notify()
        return future

    def predict(self, texts: Sequence[str]) -> Scores:
        return self.submit(texts).result()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _take(self) -> list[tuple[list[str], Future]] | None:
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if not self._pending:
                return None
            deadline = time.monotonic() + self.max_wait_s
            while self._waiting_texts < self.max_batch and not self._closed:
                left = min(deadline, self._last_arrival + self.gap_s) - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch: list[tuple[list[str], Future]] = []
            size = 0
            while self._pending and (
                not batch or size + len(self._pending[0][0]) <= self.max_batch
            ):
                texts, future = self._pending.popleft()
                batch.append((texts, future))
                size += len(texts)
            self._waiting_texts -= size
            return batch

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            texts = [t for request, _ in batch for t in request]
            try:
                results = self.predictor.predict(texts)
            except BaseException as exc:  # the callers see it; the thread goes on
                for _, future in batch:
                    future.set_exception(exc)
                continue
            start = 0
            for request, future in batch:
                future.set_result(results[start : start + len(request)])
                start += len(request)


class PredictorCache:
    def __init__(
        self,
        store: Store,
        registry: Registry,
        size: int = 4,
        max_batch: int = MAX_BATCH,
        max_wait_s: float = MAX_WAIT_S,
        gap_s: float = GAP_S,
    ):
        self.store = store
        self.registry = registry
        self.size = size
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.gap_s = gap_s
        self._entries: OrderedDict[str, Batcher] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, model: ModelRow) -> Batcher:
        """The loaded predictor for a fine-tuned model, loading it once if needed."""
        with self._lock:
            entry = self._entries.get(model.id)
            if entry is not None:
                self._entries.move_to_end(model.id)
                return entry
            load_lock = self._loading.setdefault(model.id, threading.Lock())
        with load_lock:
            with self._lock:
                if model.id in self._entries:
                    return self._entries[model.id]
            trainer = self.registry.get(model.root)
            if trainer is None:
                raise ModelUnavailable(
                    f"{model.id} was trained from {model.root}, which is not available here"
                )
            model_dir = self.store.model_dir(model)
            entry = Batcher(
                trainer.load(model_dir), model_dir, self.max_batch, self.max_wait_s, self.gap_s
            )
            with self._lock:
                self._entries[model.id] = entry
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)[1].close()
                self._loading.pop(model.id, None)
            return entry

    def evict(self, model_id: str) -> None:
        with self._lock:
            entry = self._entries.pop(model_id, None)
        if entry is not None:
            entry.close()
