"""The warm start: each head begins as a logistic regression fitted on the frozen sentence
vectors, so step 0 already scores about as well as "frozen embeddings + logistic regression"."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def fit_logistic_head(
    x: torch.Tensor, y: torch.Tensor, multi_label: bool, n_out: int, c: float = 10.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logistic regression on frozen embeddings (L-BFGS, L2 strength ``1 / (c * n)``), used to
    warm-start one head."""
    x64 = x.double()
    w = torch.zeros((n_out, x.shape[1]), dtype=torch.float64, requires_grad=True)
    b = torch.zeros((n_out,), dtype=torch.float64, requires_grad=True)
    lam = 1.0 / (c * x.shape[0])
    yy = y.double() if multi_label else y
    opt = torch.optim.LBFGS(
        [w, b],
        lr=1.0,
        max_iter=300,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-7,
        tolerance_change=1e-10,
    )

    def closure():
        opt.zero_grad()
        z = x64 @ w.T + b
        if multi_label:
            loss = F.binary_cross_entropy_with_logits(z, yy, reduction="sum") / z.shape[0]
        else:
            loss = F.cross_entropy(z, yy)
        loss = loss + 0.5 * lam * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().float(), b.detach().float()
