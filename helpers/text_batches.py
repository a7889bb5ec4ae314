"""Texts in batches of similar length: what every caller that sends a whole list to an encoder
uses (``classify_all``/``embed_all`` on the client side, the service's turns on its side)."""

from __future__ import annotations

from collections.abc import Sequence


def length_sorted_batches(texts: Sequence[str], batch_size: int) -> list[list[int]]:
    """Indices of ``texts`` in batches of similar length (shortest first).

    An encoder pads every text of a batch to the longest one; sorting the whole list by length
    first means little padding, so a split is classified or embedded faster than in file
    order. Callers put the results back in the original order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
