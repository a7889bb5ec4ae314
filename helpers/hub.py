"""Whether the Hugging Face hub is switched off, read the same way for data and encoders."""

from __future__ import annotations

import os

TRUE_VALUES = frozenset({"1", "true", "yes", "on"})


def _is_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in TRUE_VALUES


def hub_offline(datasets: bool = False) -> bool:
    """True when ``HF_HUB_OFFLINE`` is set to 1/true/yes/on (any case), as ``huggingface_hub``
    reads it; with ``datasets=True`` also when ``HF_DATASETS_OFFLINE`` is."""
    return _is_true("HF_HUB_OFFLINE") or (datasets and _is_true("HF_DATASETS_OFFLINE"))
