"""Loaded fine-tuned models: an in-memory LRU, and micro-batching of concurrent requests.

Classification never reloads a model per request: :class:`PredictorCache` keeps the last few
loaded (each loaded once even under concurrent requests). Each cached model sits behind a
:class:`Batcher`: requests that arrive while the model is busy are joined into one forward pass
(at most ``max_batch`` texts). A pass starts once no request has arrived (and no pass has
ended) for ``gap_s``, or ``max_batch`` texts wait, or ``max_wait_s`` has passed: a burst of
clients answering the previous pass is collected into one pass instead of a small pass followed
by a large one, so many clients sending one utterance each get most of the throughput of one
client sending batches. A request alone, after a pass that served a single request (one client
at a time), starts its pass at once: a lone client never waits for the gap.

Each model lives on its batcher's thread: that thread loads it and runs every forward pass
(classifications, and embeddings through :meth:`Batcher.call`). PyTorch on CPU is markedly slower
when a model loaded on one thread runs on another (single-utterance passes took ~14 ms instead of
~9.5 ms on a 2-core CPU), and a thread pool hands each request to whichever worker is free.
Predictors guard their own state (the encoder serialises its forward passes; TF-IDF has none).

A model whose files cannot be loaded (a damaged ``votes/`` or head file) raises
:class:`ModelBroken`, naming the model and the file; the failure is remembered until the
model's folder (or one of its subfolders) changes, so requests do not retry the load.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from .store import ModelRow, Store
from .trainers import Registry
from .trainers.base import Predictor

log = logging.getLogger(__name__)

Scores = list[dict[str, dict[str, float]]]
MAX_BATCH = 64  # texts per forward pass when joining requests; also a big request's turn:
# the routes send a request's texts in length-sorted chunks of this size, one after another, so
# another caller's request joins the next pass instead of waiting for the whole big one
MAX_WAIT_S = 0.03  # the longest a forward pass waits for more requests to join ...
GAP_S = 0.003  # ... it starts as soon as no request has arrived for this long


class ModelUnavailable(Exception):
    """The model exists but cannot be loaded on this machine."""


class ModelBroken(ModelUnavailable):
    """The model's files are there but cannot be loaded (damaged)."""


def _folder_signature(model_dir: Path) -> tuple[int, ...]:
    """mtimes of the model folder and its subfolders: a repair or a retrain changes one."""
    try:
        dirs = [model_dir, *(p for p in model_dir.iterdir() if p.is_dir())]
        return tuple(os.stat(d).st_mtime_ns for d in sorted(dirs))
    except OSError:
        return ()


def _failing_file(exc: BaseException, model_dir: Path) -> Path | None:
    """The file of ``model_dir`` that the load was reading when it raised: the filename of
    an OSError, else a path in the innermost frame that holds one."""
    filename = getattr(exc, "filename", None)
    if isinstance(filename, (str, os.PathLike)):
        return Path(filename)
    root = model_dir.resolve()
    try:  # a file the message names
        files = [p for p in root.rglob("*") if p.is_file()][:1000]
    except OSError:
        files = []
    named = [p for p in files if str(p) in str(exc)]
    if named:
        return max(named, key=lambda p: len(str(p)))
    tb: TracebackType | None = exc.__traceback__
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        for value in frame.f_locals.values():
            if isinstance(value, (str, os.PathLike)) and len(os.fspath(value)) < 4096:
                try:
                    path = Path(value).resolve()
                    if path.is_relative_to(root) and path.is_file():
                        return path
                except (OSError, ValueError, TypeError):
                    continue
    return None


def _broken(model_id: str, model_dir: Path, exc: BaseException) -> ModelBroken:
    file = _failing_file(exc, model_dir)
    try:
        name = file.relative_to(model_dir.resolve()) if file else None
    except ValueError:
        name = file
    where = f"its file {name} (in {model_dir})" if name else f"a file in {model_dir}"
    reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    return ModelBroken(
        f"Model {model_id} cannot be loaded: {where} is damaged ({reason}). Restore the "
        f"model's folder or delete the model (DELETE /v1/models/{model_id}) and train it again."
    )


class _Call:
    """A function to run on the batcher's thread (between forward passes)."""

    def __init__(self, fn: Callable[..., Any], args: tuple):
        self.fn, self.args = fn, args


class Batcher:
    """Runs ``predictor.predict`` on one thread, joining requests that are waiting.

    ``predictor`` is a loaded predictor, or a function that loads one: it is then called on the
    batcher's thread, and the constructor raises what it raises.
    """

    def __init__(
        self,
        predictor: Predictor | Callable[[], Predictor],
        model_dir: Path,
        max_batch: int = MAX_BATCH,
        max_wait_s: float = MAX_WAIT_S,
        gap_s: float = GAP_S,
    ):
        self.model_dir = model_dir
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.gap_s = gap_s
        self._pending: deque[tuple[list[str] | _Call, Future]] = deque()
        self._waiting_texts = 0
        self._last_arrival = 0.0
        self._last_pass_requests = 0
        self._cond = threading.Condition()
        self._closed = False
        loaded: Future = Future()
        self._thread = threading.Thread(
            target=self._run, args=(predictor, loaded), name="factory-batcher", daemon=True
        )
        self._thread.start()
        self.predictor: Predictor = loaded.result()

    def _put(self, item: list[str] | _Call, size: int) -> Future:
        future: Future = Future()
        with self._cond:
            if self._closed:
                raise ModelUnavailable("the model was unloaded; retry")
            self._pending.append((item, future))
            self._waiting_texts += size
            self._last_arrival = time.monotonic()
            self._cond.notify()
        return future

    def submit(self, texts: Sequence[str]) -> Future:
        texts = list(texts)
        return self._put(texts, len(texts))

    def predict(self, texts: Sequence[str]) -> Scores:
        return self.submit(texts).result()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` run on the batcher's thread, where the model lives (e.g. embeddings)."""
        return self.call_future(fn, *args).result()

    def call_future(self, fn: Callable[..., Any], *args: Any) -> Future:
        """:meth:`call` without waiting: the future of ``fn(*args)`` on the batcher's thread."""
        return self._put(_Call(fn, args), 0)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _take(self) -> tuple[_Call, Future] | list[tuple[list[str], Future]] | None:
        """The next call, or the next pass's requests; None once closed."""
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if not self._pending:
                return None
            first, done = self._pending[0]
            if isinstance(first, _Call):
                self._pending.popleft()
                return first, done
            deadline = time.monotonic() + self.max_wait_s
            lone = self._last_pass_requests <= 1 and len(self._pending) == 1
            while not lone and self._waiting_texts < self.max_batch and not self._closed:
                left = min(deadline, self._last_arrival + self.gap_s) - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch: list[tuple[list[str], Future]] = []
            size = 0
            while self._pending:
                texts, future = self._pending[0]
                if isinstance(texts, _Call) or (batch and size + len(texts) > self.max_batch):
                    break
                self._pending.popleft()
                batch.append((texts, future))
                size += len(texts)
            self._waiting_texts -= size
            self._last_pass_requests = len(batch)
            return batch

    def _run(self, predictor: Predictor | Callable[[], Predictor], loaded: Future) -> None:
        try:
            if not hasattr(predictor, "predict"):
                predictor = predictor()
            self.predictor = cast(Predictor, predictor)
        except BaseException as exc:
            loaded.set_exception(exc)
            return
        loaded.set_result(self.predictor)
        while (batch := self._take()) is not None:
            if isinstance(batch, tuple):
                call, done = batch
                try:
                    done.set_result(call.fn(*call.args))
                except BaseException as exc:
                    done.set_exception(exc)
                continue
            texts = [t for request, _ in batch for t in request]
            try:
                results = self.predictor.predict(texts)
            except BaseException as exc:  # the callers see it; the thread goes on
                for _, future in batch:
                    future.set_exception(exc)
                continue
            with self._cond:  # the clients just answered get ``gap_s`` to send again
                self._last_arrival = time.monotonic()
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
        # model id -> (folder signature, error) of a load that failed
        self._broken: dict[str, tuple[tuple[int, ...], str]] = {}

    def get(self, model: ModelRow) -> Batcher:
        """The loaded predictor for a fine-tuned model, loading it once if needed."""
        with self._lock:
            entry = self._entries.get(model.id)
            if entry is not None and not entry.closed:
                self._entries.move_to_end(model.id)
                return entry
            load_lock = self._loading.setdefault(model.id, threading.Lock())
        with load_lock:
            with self._lock:
                entry = self._entries.get(model.id)
                if entry is not None and not entry.closed:
                    return entry
            trainer = self.registry.get(model.root)
            if trainer is None:
                raise ModelUnavailable(
                    f"{model.id} was trained from {model.root}, which is not available here"
                )
            model_dir = self.store.model_dir(model)
            signature = _folder_signature(model_dir)
            known = self._broken.get(model.id)
            if known is not None and known[0] == signature:
                raise ModelBroken(known[1])
            try:
                entry = Batcher(
                    lambda: trainer.load(model_dir),
                    model_dir,
                    self.max_batch,
                    self.max_wait_s,
                    self.gap_s,
                )
            except Exception as exc:
                if isinstance(exc, ModelUnavailable) or not model_dir.is_dir():
                    raise  # deleted meanwhile: the routes answer 410
                error = _broken(model.id, model_dir, exc)
                log.error("%s", error)
                self._broken[model.id] = (signature, str(error))
                raise error from exc
            self._broken.pop(model.id, None)
            with self._lock:
                self._entries[model.id] = entry
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)[1].close()
                self._loading.pop(model.id, None)
            return entry

    def peek(self, model_id: str) -> Batcher | None:
        """The model's batcher if it is loaded (no database, no loading: safe on the event loop)."""
        with self._lock:
            entry = self._entries.get(model_id)
            if entry is None or entry.closed:
                return None
            self._entries.move_to_end(model_id)
            return entry

    def evict(self, model_id: str) -> None:
        with self._lock:
            self._broken.pop(model_id, None)
            entry = self._entries.pop(model_id, None)
        if entry is not None:
            entry.close()
