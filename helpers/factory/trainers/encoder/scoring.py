"""The one scoring rule, used by the predictor, the ONNX export and the benchmarks:
sentence vector -> each target's head -> softmax (one label) or sigmoids (several) ->
optionally blended with the nearest training texts' votes (single-label targets only)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .votes import NearestNeighbourVotes


def probabilities(logits: torch.Tensor, multi_label: bool) -> torch.Tensor:
    """A head's logits as scores: independent sigmoids, or a softmax over the labels."""
    return torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)


class ScoringRule(nn.Module):
    """``forward(pooled)``: one score tensor [n × labels] per target.

    Plain tensor operations only, so the same module runs in PyTorch and inside an ONNX graph.
    """

    def __init__(
        self,
        heads: nn.ModuleList,
        multi_label: Sequence[bool],
        votes: NearestNeighbourVotes | None = None,
    ) -> None:
        super().__init__()
        if len(heads) != len(multi_label):
            raise ValueError(f"{len(heads)} heads but {len(multi_label)} targets")
        self.heads = heads
        self.multi_label = [bool(m) for m in multi_label]
        self.votes = votes

    def logits(self, pooled: torch.Tensor) -> list[torch.Tensor]:
        return [head(pooled) for head in self.heads]

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = []
        for i, (z, multi) in enumerate(zip(self.logits(pooled), self.multi_label, strict=True)):
            p = probabilities(z, multi)
            out.append(p if self.votes is None else self.votes.blend(i, pooled, p))
        return tuple(out)
