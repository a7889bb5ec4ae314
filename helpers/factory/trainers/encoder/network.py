"""The network: a pretrained BERT-style encoder split into a frozen bottom and a trainable top,
and the sentence vector the heads read (mean pooling over non-padding tokens, L2-normalised, as
sentence-transformers computes it)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from torch.nn import functional as F

from ..device import num_threads


@contextmanager
def torch_settings(device: torch.device, deterministic: bool = True) -> Iterator[None]:
    """This library's thread count and deterministic kernels while training."""
    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(num_threads())
    if deterministic:  # CUDA kernels without a deterministic variant only warn
        torch.use_deterministic_algorithms(True, warn_only=device.type != "cpu")
    try:
        yield
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det)


def mean_pool(
    hidden: torch.Tensor, attention_mask: torch.Tensor, normalize: bool = True
) -> torch.Tensor:
    """The sentence vector: the mean of the token vectors over real tokens (not padding), in
    float32, scaled to length 1 when ``normalize`` (as sentence-transformers computes it). The
    one definition the trainer, the predictor and the ONNX graph use."""
    hidden = hidden.float()
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
    return F.normalize(pooled, p=2, dim=-1) if normalize else pooled


def load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def new_encoder(config) -> nn.Module:
    from transformers import AutoModel

    try:
        return AutoModel.from_config(config, add_pooling_layer=False)
    except TypeError:
        return AutoModel.from_config(config)


def pretrained_encoder(path: Path) -> nn.Module:
    from transformers import AutoModel

    try:
        return AutoModel.from_pretrained(str(path), add_pooling_layer=False)
    except TypeError:
        return AutoModel.from_pretrained(str(path))


class Encoder(nn.Module):
    """A BERT-style encoder split into a frozen bottom and a trainable top, plus mean pooling."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    # typed views of the transformers model's parts (nn.Module types them Tensor | Module)
    @property
    def hf_config(self) -> Any:  # a transformers PretrainedConfig
        return self.model.config

    @property
    def hidden_size(self) -> int:
        return self.hf_config.hidden_size

    @property
    def embeddings(self) -> nn.Module:
        return cast(nn.Module, self.model.embeddings)

    @property
    def layers(self) -> nn.ModuleList:
        return cast(nn.ModuleList, cast(nn.Module, self.model.encoder).layer)

    def _mask(self, hidden: torch.Tensor, attention_mask: torch.Tensor):
        if bool(attention_mask.all()):
            return None
        try:
            from transformers.masking_utils import create_bidirectional_mask

            return create_bidirectional_mask(
                config=self.model.config, inputs_embeds=hidden, attention_mask=attention_mask
            )
        except ImportError:  # older transformers: an additive 4-d mask
            ext = attention_mask[:, None, None, :].to(hidden.dtype)
            return (1.0 - ext) * torch.finfo(hidden.dtype).min

    def bottom(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_layers: int):
        hidden = self.embeddings(input_ids=input_ids)
        return self.run_layers(hidden, attention_mask, 0, n_layers)

    def run_layers(self, hidden, attention_mask, start: int, stop: int) -> torch.Tensor:
        if stop <= start:
            return hidden
        mask = self._mask(hidden, attention_mask)
        for layer in self.layers[start:stop]:
            out = layer(hidden, mask)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    @staticmethod
    def pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return mean_pool(hidden, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bottom(input_ids, attention_mask, len(self.layers))
        return self.pool(hidden, attention_mask)


def pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for j, s in enumerate(seqs):
        ids[j, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[j, : len(s)] = 1
    return ids, mask
