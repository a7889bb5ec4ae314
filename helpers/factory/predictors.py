"""An in-memory LRU of loaded fine-tuned models, so classification never reloads per request."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from .store import Store
from .trainers import Registry
from .trainers.base import Predictor


class ModelUnavailable(Exception):
    """The model exists but cannot be loaded on this machine."""


class _Entry:
    def __init__(self, predictor: Predictor):
        self.predictor = predictor
        self.lock = threading.Lock()  # predictors need not be thread-safe

    def predict(self, texts: Sequence[str]) -> list[dict[str, dict[str, float]]]:
        with self.lock:
            return self.predictor.predict(texts)


class PredictorCache:
    def __init__(self, store: Store, registry: Registry, size: int = 4):
        self.store = store
        self.registry = registry
        self.size = size
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, model: dict) -> _Entry:
        """The loaded predictor for a ``models`` row, loading it once if needed."""
        model_id = model["id"]
        with self._lock:
            entry = self._entries.get(model_id)
            if entry is not None:
                self._entries.move_to_end(model_id)
                return entry
            load_lock = self._loading.setdefault(model_id, threading.Lock())
        with load_lock:
            with self._lock:
                if model_id in self._entries:
                    return self._entries[model_id]
            trainer = self.registry.get(model["root"])
            if trainer is None:
                raise ModelUnavailable(
                    f"{model_id} was trained from {model['root']}, which is not available here"
                )
            entry = _Entry(trainer.load(self.store.data_dir / model["path"]))
            with self._lock:
                self._entries[model_id] = entry
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
                self._loading.pop(model_id, None)
            return entry

    def evict(self, model_id: str) -> None:
        with self._lock:
            self._entries.pop(model_id, None)
