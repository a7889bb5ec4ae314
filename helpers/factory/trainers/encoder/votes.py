"""The nearest-neighbour votes (an extra, off in the plain recipe): the training texts' sentence
vectors and labels, kept with the model; the ``k`` most similar ones vote on a text's label.

Models saved before the votes had this name store them as ``memory`` (``classifier.json`` key
and folder); :func:`.model_format.read` maps that key to ``votes``, so they load unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import nn

from ..base import TargetSpec

VOTES_DIR = "votes"
RULE = (
    "scores = (1 - weight) * softmax + weight * votes, votes = the labels of the k training "
    "texts with the most similar sentence vectors (cosine), weighted by softmax(similarity / "
    "temperature) over those k; single-label targets only"
)


class NearestNeighbourVotes(nn.Module):
    """The training set's sentence vectors and labels: votes of the ``k`` nearest neighbours.

    For a single-label target, a text's scores become ``(1 - weight) * softmax + weight *
    votes``, where ``votes`` spreads 1 over the labels of the ``k`` training texts with the
    most similar (cosine) sentence vectors, each weighted by ``softmax(similarity /
    temperature)`` over those ``k``. Multi-label targets keep their sigmoids. Plain tensor ops
    (matmul, topk, gather, comparison), so the same module runs in PyTorch and in an ONNX graph.
    """

    def __init__(
        self,
        vectors: torch.Tensor,
        labels: dict[int, torch.Tensor],
        n_labels: dict[int, int],
        k: int = 10,
        temperature: float = 0.05,
        weight: float = 0.4,
    ) -> None:
        super().__init__()
        if not 0.0 < weight < 1.0 or k < 1 or temperature <= 0:
            raise ValueError(
                f"votes: need 0 < weight < 1, k >= 1, temperature > 0; got "
                f"{weight}, {k}, {temperature}"
            )
        self.register_buffer("vectors", vectors.float().contiguous())
        for i, y in labels.items():
            self.register_buffer(f"labels_{i}", y.long())
            self.register_buffer(f"range_{i}", torch.arange(n_labels[i], dtype=torch.long))
        self.targets = sorted(labels)
        self.size = int(vectors.shape[0])
        self.k = min(int(k), self.size)
        self.temperature = float(temperature)
        self.weight = float(weight)

    def blend(self, i: int, pooled: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """Target ``i``'s probabilities blended with its neighbours' votes (unchanged when the
        target has no votes)."""
        if i not in self.targets:
            return probs
        sims = pooled.float() @ cast(torch.Tensor, self.vectors).T
        top, idx = sims.topk(self.k, dim=-1)
        w = torch.softmax(top / self.temperature, dim=-1)
        labels = getattr(self, f"labels_{i}")[idx]  # (batch, k)
        onehot = (labels.unsqueeze(-1) == getattr(self, f"range_{i}")).to(w.dtype)
        votes = (w.unsqueeze(-1) * onehot).sum(dim=1)
        return (1.0 - self.weight) * probs + self.weight * votes

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        vectors = cast(torch.Tensor, self.vectors).cpu().numpy().astype(np.float16)
        np.save(folder / "vectors.npy", vectors, allow_pickle=False)
        for i in self.targets:
            y = getattr(self, f"labels_{i}").cpu().numpy().astype(np.int32)
            np.save(folder / f"labels_{i}.npy", y, allow_pickle=False)

    @classmethod
    def load(cls, folder: Path, spec: dict, targets: list[TargetSpec]) -> NearestNeighbourVotes:
        vectors = torch.from_numpy(
            np.load(folder / "vectors.npy", allow_pickle=False).astype(np.float32)
        )
        labels, n_labels = {}, {}
        for i in spec["targets"]:
            y = np.load(folder / f"labels_{i}.npy", allow_pickle=False).astype(np.int64)
            if len(y) != len(vectors) or (
                len(y) and not 0 <= y.min() <= y.max() < len(targets[i].labels)
            ):
                raise ValueError(
                    f"{folder}/labels_{i}.npy: labels do not match vectors.npy "
                    f"or target {targets[i].name!r}"
                )
            labels[int(i)] = torch.from_numpy(y)
            n_labels[int(i)] = len(targets[i].labels)
        return cls(
            vectors,
            labels,
            n_labels,
            int(spec["k"]),
            float(spec["temperature"]),
            float(spec["weight"]),
        )
