"""The sampler: which training texts go into each step's batch."""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import torch

BUCKET_BATCHES = 16
"""Batches per length-sorted chunk."""


def length_bucketed_batches(
    lengths: np.ndarray, batch_size: int, steps: int, seed: int
) -> Iterator[np.ndarray]:
    """``steps`` batches of exactly ``batch_size`` indices: epoch-shuffled and length-bucketed.

    A stream of random permutations (one per epoch) is cut into chunks of ``BUCKET_BATCHES``
    batches; each chunk is sorted by length (little padding), cut into batches, and the batches
    of the chunk are shuffled.
    """
    rng = np.random.default_rng(seed)
    n = len(lengths)
    stream = np.empty(0, dtype=np.int64)
    produced = 0
    while produced < steps:
        n_batches = min(BUCKET_BATCHES, steps - produced)
        need = n_batches * batch_size
        while len(stream) < need:
            stream = np.concatenate([stream, rng.permutation(n)])
        chunk, stream = stream[:need], stream[need:]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches = [chunk[i * batch_size : (i + 1) * batch_size] for i in range(n_batches)]
        for k in rng.permutation(n_batches):
            yield batches[k]
        produced += n_batches


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
