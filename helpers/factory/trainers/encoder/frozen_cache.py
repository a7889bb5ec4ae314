"""The frozen cache: the outputs of the frozen bottom layers, computed once before training."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..base import CancelCheck, never_cancelled
from ..device import autocast
from .network import Encoder, pad

FROZEN_BATCH = 128
"""Texts per batch in the frozen pass (and in evaluation)."""
CACHE_BUDGET_BYTES = 1 << 30


class FrozenCache:
    """The input of the first trainable layer for every example, within a memory budget.

    The frozen bottom layers' outputs are stored flat (all tokens of all examples, one row per
    token, ``offsets`` marking each example): float32 when they fit in ``CACHE_BUDGET_BYTES``,
    float16 when twice as many tokens fit, otherwise nothing is cached and :meth:`batch`
    recomputes the frozen layers (without gradients) — so memory never grows past the budget
    and time stays linear in the number of examples. With no frozen layer (every layer trains)
    only the token ids are kept.
    """

    def __init__(
        self,
        enc: Encoder,
        ids: list[list[int]],
        pad_id: int,
        n_bottom: int,
        device: torch.device,
        budget: int = CACHE_BUDGET_BYTES,
    ) -> None:
        self.enc, self.ids, self.pad_id = enc, ids, pad_id
        self.n_bottom, self.device = n_bottom, device
        lengths = np.array([len(x) for x in ids], dtype=np.int64)
        self.lengths = lengths
        self.offsets = np.concatenate([[0], np.cumsum(lengths)])
        dim = enc.hidden_size
        tokens = int(self.offsets[-1])
        self.mode = "recompute"
        self.data: torch.Tensor | None = None
        if n_bottom > 0 and tokens * dim * 4 <= budget:
            self.mode, dtype = "float32", torch.float32
        elif n_bottom > 0 and tokens * dim * 2 <= budget:
            self.mode, dtype = "float16", torch.float16
        if self.mode != "recompute":
            self.data = torch.empty((tokens, dim), dtype=dtype)

    def _bottom(self, idx: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        input_ids, mask = pad([self.ids[i] for i in idx], self.pad_id)
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        with torch.no_grad(), autocast(self.device):
            hidden = self.enc.bottom(input_ids, mask, self.n_bottom)
        return hidden.float(), mask

    def fill(
        self, pooled_out: torch.Tensor | None, check_cancelled: CancelCheck = never_cancelled
    ) -> None:
        """One frozen pass in length order: fill the cache, and ``pooled_out`` (the frozen
        encoder's sentence embeddings, for the warm start) when given. ``check_cancelled``
        runs between batches: the pass can take a while on a large file."""
        if self.data is None and pooled_out is None:
            return
        order = np.argsort(self.lengths, kind="stable").tolist()
        n_layers = len(self.enc.layers)
        with torch.inference_mode():
            for s in range(0, len(order), FROZEN_BATCH):
                check_cancelled()
                idx = order[s : s + FROZEN_BATCH]
                hidden, mask = self._bottom(idx)
                if self.data is not None:
                    rows = hidden.cpu()
                    for j, i in enumerate(idx):
                        a, b = self.offsets[i], self.offsets[i + 1]
                        self.data[a:b] = rows[j, : b - a].to(self.data.dtype)
                if pooled_out is not None:
                    with autocast(self.device):
                        top = self.enc.run_layers(hidden, mask, self.n_bottom, n_layers)
                    pooled_out[idx] = self.enc.pool(top, mask).cpu()

    def batch(self, idx: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded float32 inputs of the first trainable layer and the attention mask."""
        if self.data is None:
            return self._bottom(idx)
        width = int(max(self.lengths[i] for i in idx))
        hidden = torch.zeros((len(idx), width, self.data.shape[1]), dtype=torch.float32)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for j, i in enumerate(idx):
            a, b = self.offsets[i], self.offsets[i + 1]
            hidden[j, : b - a] = self.data[a:b]
            mask[j, : b - a] = 1
        return hidden.to(self.device), mask.to(self.device)

    def nbytes(self) -> int:
        return 0 if self.data is None else self.data.numel() * self.data.element_size()
