"""Label encoding and the losses: cross-entropy (one label per text) or binary cross-entropy
(several), and the supervised contrastive term of the extras recipe."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch.nn import functional as F

from ..base import MULTI_LABEL_THRESHOLD, Example, TargetSpec

IGNORE = -100
"""The label index of a validation text whose label training never saw: left out of losses."""


class LabelCodec:
    """Label indices per target, and the classification loss and accuracy of one batch."""

    def __init__(self, targets: Sequence[TargetSpec]) -> None:
        self.specs = list(targets)
        self.index = [{label: i for i, label in enumerate(t.labels)} for t in self.specs]

    def encode(self, examples: Sequence[Example]) -> list[torch.Tensor]:
        out = []
        for t, index in zip(self.specs, self.index, strict=True):
            if t.multi_label:
                y = torch.zeros((len(examples), len(t.labels)), dtype=torch.float32)
                for r, ex in enumerate(examples):
                    value = ex.labels[t.name]
                    for label in [value] if isinstance(value, str) else value:
                        if label in index:  # a validation label unseen in training is ignored
                            y[r, index[label]] = 1.0
            else:  # an unseen validation label counts as an error and is left out of the loss
                y = torch.tensor(
                    [
                        index.get(cast(str, ex.labels[t.name]), IGNORE)  # one label
                        for ex in examples
                    ],
                    dtype=torch.long,
                )
            out.append(y)
        return out

    def losses(
        self,
        logits: Sequence[torch.Tensor],
        ys: Sequence[torch.Tensor],
        label_smoothing: float = 0.0,
    ) -> torch.Tensor:
        total = logits[0].new_zeros((), dtype=torch.float32)
        for t, z, y in zip(self.specs, logits, ys, strict=True):
            z = z.float()
            if t.multi_label:  # independent sigmoids: BCE summed over labels, mean over examples
                loss = F.binary_cross_entropy_with_logits(z, y, reduction="sum") / z.shape[0]
            elif bool((y != IGNORE).any()):
                loss = F.cross_entropy(z, y, ignore_index=IGNORE, label_smoothing=label_smoothing)
            else:
                loss = z.sum() * 0.0
            total = total + loss
        return total

    def correct(self, logits: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> list[int]:
        counts = []
        for t, z, y in zip(self.specs, logits, ys, strict=True):
            z, y = z.float().cpu(), y.cpu()
            if t.multi_label:
                pred = torch.sigmoid(z) >= MULTI_LABEL_THRESHOLD
                counts.append(int((pred == y.bool()).all(dim=1).sum()))
            else:
                counts.append(int((z.argmax(dim=1) == y).sum()))
        return counts


def supervised_contrastive_loss(
    vectors: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1
) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al., 2020, the "L_out" form) of one batch.

    ``vectors`` [n, d] are L2-normalised in here; ``labels`` [n] are label indices (``IGNORE``
    rows take no part). For every anchor with at least one other example of its label in the
    batch: minus the mean, over those positives, of ``log softmax(cos / temperature)`` taken over
    all other examples. Averaged over such anchors; 0 (with a gradient) when there are none.
    """
    keep = labels != IGNORE
    z = F.normalize(vectors[keep].float(), dim=-1)
    y = labels[keep]
    n = len(y)
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    sim = (z @ z.T / temperature).masked_fill(eye, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    positives = (y[:, None] == y[None, :]) & ~eye
    n_pos = positives.sum(dim=1)
    anchors = n_pos > 0
    if not bool(anchors.any()):
        return vectors.sum() * 0.0
    per_anchor = -log_prob.masked_fill(~positives, 0.0).sum(dim=1)[anchors] / n_pos[anchors]
    return per_anchor.mean()
